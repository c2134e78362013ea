package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/noderuntime/noderuntime/internal/authstore"
	"github.com/noderuntime/noderuntime/internal/config"
	"github.com/noderuntime/noderuntime/internal/database"
	"github.com/noderuntime/noderuntime/internal/secrets"
)

// rotateKeys re-encrypts every stored secret under the key ring's first key. Run it
// after every replica encrypts with the new key (it is first in
// NODERUNTIME_ENCRYPTION_KEYS everywhere) and before the old key leaves the ring.
func rotateKeys(args []string, env lookupEnv, stdout, stderr io.Writer) int {
	fs := newFlagSet("rotate-keys", "Re-encrypt every authorization and login state under the first key of the key ring, in batches;\nsafe while the service runs. Exit 1 when rows remain under an older key.", stderr)
	dbFlag := fs.String("database-url", "", "Postgres connection string (env DATABASE_URL)")
	keySpec := fs.String("encryption-keys", "", "key ring id:base64key,...; the first encrypts (env NODERUNTIME_ENCRYPTION_KEYS)")
	batch := fs.Int("batch-size", 100, "rows per transaction")
	wait := fs.Duration("wait", 30*time.Second, "how long to retry rows that a refresh holds locked")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if code := flagsOnly(fs, stderr); code >= 0 {
		return code
	}
	dbURL, err := databaseURL(*dbFlag, env)
	if err != nil {
		return configError(stderr, err)
	}
	if *keySpec == "" {
		*keySpec = env.get("NODERUNTIME_ENCRYPTION_KEYS")
	}
	if *keySpec == "" {
		return configError(stderr, &config.Error{Variable: "NODERUNTIME_ENCRYPTION_KEYS", Problem: "is required (or --encryption-keys)"})
	}
	keys, err := secrets.ParseKeyRing(*keySpec)
	if err != nil {
		return configError(stderr, &config.Error{Variable: "NODERUNTIME_ENCRYPTION_KEYS", Problem: err.Error()})
	}
	if *batch <= 0 {
		return configError(stderr, &config.Error{Variable: "--batch-size", Problem: "must be positive"})
	}
	if *wait < 0 {
		return configError(stderr, &config.Error{Variable: "--wait", Problem: "must not be negative"})
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	pool, err := database.Open(ctx, dbURL, nil)
	if err != nil {
		fmt.Fprintf(stderr, "noderuntime: %v\n", err)
		return exitFailed
	}
	defer pool.Close()
	if err := database.CheckSchema(ctx, pool); err != nil {
		fmt.Fprintf(stderr, "noderuntime: %v\n", database.Redact(err)) // the first query connects
		return exitFailed
	}
	res, err := authstore.RotateKeys(ctx, pool, keys, *batch, *wait)
	if err != nil {
		fmt.Fprintf(stderr, "noderuntime: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "re-encrypted %d authorizations and %d login states under key %q; %d rows remain under older keys\n",
		res.Authorizations, res.States, keys.PrimaryID(), res.Remaining)
	for _, err := range res.Unreadable {
		fmt.Fprintf(stderr, "noderuntime: left as it is: %v\n", err)
	}
	if len(res.Unreadable) > 0 {
		fmt.Fprintf(stderr, "noderuntime: %d rows do not decrypt with the key ring of NODERUNTIME_ENCRYPTION_KEYS; re-authorize or delete those authorizations (an unreadable login state expires by itself)\n", len(res.Unreadable))
	}
	if res.Remaining > 0 {
		return exitFailed
	}
	return exitOK
}
