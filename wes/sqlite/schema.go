package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// ErrNewerSchema means the database has migrations this binary does not
// have: a newer wesgate has used it. An older binary must not run on it (it
// would not know the newer tables and columns), so Open refuses it.
var ErrNewerSchema = errors.New("the database was upgraded by a newer wesgate")

// checkKnown refuses a database whose migrations table names a migration
// this binary does not embed.
func (db *DB) checkKnown(ctx context.Context, embedded []string) error {
	rows, err := db.write.QueryContext(ctx, `SELECT name FROM migrations ORDER BY name`)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer rows.Close()
	var unknown []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if !slices.Contains(embedded, name) {
			unknown = append(unknown, path.Base(name))
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if len(unknown) > 0 {
		return fmt.Errorf("%w (it has migrations %s that this version does not know): run that newer version, "+
			"or restore a backup taken before the upgrade", ErrNewerSchema, strings.Join(unknown, ", "))
	}
	return nil
}
