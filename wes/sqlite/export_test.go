package sqlite

import "context"

// WritePragma reads a pragma on the connection that every write goes through.
func WritePragma(ctx context.Context, db *DB, name string) (string, error) {
	var v string
	err := db.write.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v)
	return v, err
}
