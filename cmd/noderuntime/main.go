// Command noderuntime runs Webex Engage nodes for a flow orchestrator.
//
//	noderuntime serve           run the HTTP service
//	noderuntime migrate up      apply pending database migrations
//	noderuntime migrate status  show which migrations are applied
//	noderuntime dev             run the service with an in-process Engage simulator
//	noderuntime rotate-keys     re-encrypt stored secrets under the newest key
//	noderuntime version         print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/noderuntime/noderuntime/internal/app"
	"github.com/noderuntime/noderuntime/internal/buildinfo"
	"github.com/noderuntime/noderuntime/internal/config"
	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/jsonlog"
	"github.com/noderuntime/noderuntime/internal/logbuf"
)

func main() {
	os.Exit(run(os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

// exit codes
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2 // bad command line or configuration
)

// lookupEnv reads the environment as os.LookupEnv does: a variable set to "" is set.
type lookupEnv func(string) (string, bool)

func (l lookupEnv) get(k string) string {
	v, _ := l(k)
	return v
}

type command struct {
	name, summary string
	run           func(args []string, env lookupEnv, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run the HTTP service", serve},
		{"migrate", "apply (up) or show (status) database migrations", migrateCmd},
		{"dev", "run the service with an in-process Engage simulator and a demo authorization", dev},
		{"rotate-keys", "re-encrypt every stored secret under the first encryption key", rotateKeys},
		{"version", "print the version", version},
	}
}

func run(args []string, env lookupEnv, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], env, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "noderuntime: unknown command %q; run `noderuntime help`\n", args[0])
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: noderuntime <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `noderuntime <command> --help` for a command's flags; one whose help names a variable (env NAME) can also be set by it.")
}

func newFlagSet(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: noderuntime %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags returns the exit code to stop with, or -1 to go on.
func parseFlags(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	return -1
}

// flagsOnly refuses the arguments flag left unread, for the commands that take flags
// only: a word dropped silently could be meant (`serve --migrate false` sets --migrate,
// then stops at "false"). It returns the exit code to stop with, or -1 to go on.
func flagsOnly(fs *flag.FlagSet, stderr io.Writer) int {
	if fs.NArg() == 0 {
		return -1
	}
	fmt.Fprintf(stderr, "noderuntime: %s takes flags only, not %q (a boolean flag takes its value as --flag=false); run `noderuntime %s --help`\n", fs.Name(), fs.Arg(0), fs.Name())
	return exitUsage
}

// configError prints the one line that names the bad setting.
func configError(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "noderuntime: configuration: %v\n", err)
	return exitUsage
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(jsonlog.New(w, &slog.HandlerOptions{Level: level}))
}

func serve(args []string, env lookupEnv, _, stderr io.Writer) int {
	fs := newFlagSet("serve", "Run the HTTP service. Refuses to start on a database schema that is behind (see `migrate`).", stderr)
	var cfg config.Config
	load := config.Settings(fs, env, &cfg)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if code := flagsOnly(fs, stderr); code >= 0 {
		return code
	}
	if err := load(); err != nil {
		return configError(stderr, err)
	}
	// One access-log line per request: buffered, they cost a write per few hundred
	// requests instead of one each. Every return below passes the deferred Close, so the
	// log is complete when the process exits.
	logOut := logbuf.New(stderr, logbuf.DefaultDelay, logbuf.DefaultSize)
	defer logOut.Close()
	logger := newLogger(logOut, cfg.LogLevel)
	for _, w := range cfg.Warnings() {
		logger.Warn(w)
	}
	fail := func(err error) int {
		_ = logOut.Flush() // the lines before it come first
		fmt.Fprintf(stderr, "noderuntime: %v\n", err)
		return exitFailed
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// A stop asked for while starting (a migration or the schema check waiting on
	// Postgres) is a stop, not a failure.
	stopped := func() int {
		logger.Info("stopped before serving")
		return exitOK
	}

	if cfg.Migrate {
		if _, _, err := database.Migrate(ctx, cfg.DatabaseURL); err != nil {
			if ctx.Err() != nil {
				return stopped()
			}
			return fail(err)
		}
	}
	a, err := app.New(ctx, cfg, logger)
	if err != nil && ctx.Err() != nil {
		return stopped()
	}
	if cerr, ok := errors.AsType[*config.Error](err); ok {
		_ = logOut.Flush()
		return configError(stderr, cerr)
	}
	if err != nil {
		return fail(err)
	}
	if err := a.Run(ctx, nil); err != nil {
		logger.Error("serve failed", slog.String("error", err.Error()))
		return exitFailed
	}
	return exitOK
}

func migrateCmd(args []string, env lookupEnv, stdout, stderr io.Writer) int {
	fs := newFlagSet("migrate", "migrate up: apply pending migrations (safe when several replicas run it at once).\nmigrate status: print the applied and the latest schema version; exit 1 when behind.", stderr)
	dbFlag := fs.String("database-url", "", "Postgres connection string (env DATABASE_URL)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	// Flags may follow the subcommand too (`migrate up --database-url ...`): flag stops
	// at the first argument, and what it left unread must not be silently dropped.
	sub := fs.Arg(0)
	if fs.NArg() > 0 {
		if code := parseFlags(fs, fs.Args()[1:]); code >= 0 {
			return code
		}
	}
	if (sub != "up" && sub != "status") || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "noderuntime: usage: noderuntime migrate [--database-url URL] up|status")
		return exitUsage
	}
	dbURL, err := databaseURL(*dbFlag, env)
	if err != nil {
		return configError(stderr, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	switch sub {
	case "up":
		from, to, err := database.Migrate(ctx, dbURL)
		if err != nil {
			fmt.Fprintf(stderr, "noderuntime: %v\n", err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "schema at version %d (was %d)\n", to, from)
		return exitOK
	case "status":
		pool, err := database.Open(ctx, dbURL, nil)
		if err != nil {
			fmt.Fprintf(stderr, "noderuntime: %v\n", err)
			return exitFailed
		}
		defer pool.Close()
		v, err := database.SchemaVersion(ctx, pool)
		if err != nil {
			fmt.Fprintf(stderr, "noderuntime: cannot read the schema version: %v\n", database.Redact(err))
			return exitFailed
		}
		fmt.Fprintf(stdout, "applied %d, latest %d\n", v, database.Latest())
		if v < database.Latest() {
			return exitFailed
		}
		return exitOK
	}
	return exitUsage // unreachable: sub was checked
}

// databaseURL is DATABASE_URL for the commands that need it without the rest of serve's
// settings (migrate, rotate-keys): the flag, else the variable, read and checked as
// serve reads it. A bad value is a *config.Error.
func databaseURL(flagValue string, env lookupEnv) (string, error) {
	s := flagValue
	if s == "" {
		s = env.get("DATABASE_URL")
	}
	s = strings.TrimSpace(s) // a Secret file's newline is not part of it
	if s == "" {
		return "", &config.Error{Variable: "DATABASE_URL", Problem: "is required (or --database-url)"}
	}
	// Before pgx sees it: its parse errors mask a password only in part.
	if err := config.CheckDatabaseURL(s); err != nil {
		return "", err
	}
	return s, nil
}

func version(args []string, _ lookupEnv, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "Print the version.", stderr)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if code := flagsOnly(fs, stderr); code >= 0 {
		return code
	}
	fmt.Fprintln(stdout, "noderuntime", buildinfo.Version)
	return exitOK
}
