package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/wesgate/wesgate/wes/sqlite"
)

// runBackup is `wesgate backup DEST`: a consistent copy of the database,
// taken while wesgate serves (docs/operations.md says how to restore it).
func runBackup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("wesgate backup", flag.ContinueOnError)
	flags.SetOutput(stderr)
	data := flags.String("data", "", "data directory holding wesgate.db (WESGATE_DATA; default: the configuration's, else ./wesgate-data)")
	cfgPath := flags.String("config", "", "configuration file, TOML (WESGATE_CONFIG)")
	flags.Usage = func() {
		fmt.Fprint(stderr, "Usage: wesgate backup [--config F] [--data D] DEST\n\n"+
			"Writes a consistent copy of the database to the new file DEST while wesgate keeps serving.\n"+
			"The run directories (DATA/runs) are ordinary files: back them up with your file backup.\n\n")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if flags.NArg() != 1 {
		fmt.Fprintln(stderr, "wesgate backup: name one destination file, after the flags (try --help)")
		return errUsage
	}
	dest := flags.Arg(0)
	cfg := defaultConfig()
	if err := loadConfig(firstOf(*cfgPath, getenv("WESGATE_CONFIG")), &cfg); err != nil {
		return err
	}
	dbPath := filepath.Join(firstOf(*data, getenv("WESGATE_DATA"), cfg.Data), "wesgate.db")
	// Opening would create an empty database: a backup of nothing is a
	// mistake worth saying.
	if _, err := os.Stat(dbPath); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backup: no database at %s (use --data or --config)", dbPath)
	}
	start := time.Now()
	db, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Backup(ctx, dest); err != nil {
		return err
	}
	st, err := os.Stat(dest)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "wesgate: backed up %s to %s (%d bytes in %s)\n", dbPath, dest, st.Size(),
		time.Since(start).Round(time.Millisecond))
	return nil
}
