// Package pgtemp runs a throwaway PostgreSQL cluster from the installed server binaries:
// for tests that must stop and restart "the database" without touching the machine's
// own server, and for `noderuntime dev` on a laptop without one.
package pgtemp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Cluster is one throwaway server: its data directory, socket directory and port.
type Cluster struct {
	Dir  string
	Port int
	bin  string
	// runAs is the unprivileged account the server runs as when we are root:
	// initdb and postgres refuse to run as root.
	runAs string
}

// ErrNoBinaries means no PostgreSQL server binaries are installed.
var ErrNoBinaries = errors.New("pgtemp: no PostgreSQL server binaries found (install postgresql, or set PG_BIN to the directory holding initdb and pg_ctl)")

// FindBinaries returns the directory of initdb and pg_ctl: $PG_BIN, else the newest
// /usr/lib/postgresql/*/bin, else whatever is on PATH.
func FindBinaries() (string, error) {
	if dir := os.Getenv("PG_BIN"); dir != "" {
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNoBinaries
}

func pgMajor(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// Start creates a cluster in a new directory under parent (os.TempDir when empty) and
// starts it on a free loopback port.
func Start(ctx context.Context, parent string) (*Cluster, error) {
	bin, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(parent, "pgtemp-")
	if err != nil {
		return nil, fmt.Errorf("pgtemp: %w", err)
	}
	c := &Cluster{Dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		c.runAs = "postgres"
		if err := chownTo(dir, c.runAs); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if out, err := c.command(ctx, "initdb", "-D", c.dataDir(), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtemp: initdb: %w: %s", err, lastLine(out))
	}
	if err := c.Start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.Dir, "data") }

// URL is the connection string of database db on this cluster.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// Start (re)starts the server, on the same port as before when there was one, and waits
// until it accepts connections.
func (c *Cluster) Start(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		if c.Port == 0 || attempt > 0 {
			p, err := freePort()
			if err != nil {
				return err
			}
			c.Port = p
		}
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200", c.Port, c.Dir)
		out, err := c.command(ctx, "pg_ctl", "-D", c.dataDir(), "-o", opts, "-l", filepath.Join(c.Dir, "log"), "-w", "-t", "30", "start").CombinedOutput()
		if err == nil {
			return nil
		}
		if attempt >= 3 {
			log, _ := os.ReadFile(filepath.Join(c.Dir, "log"))
			return fmt.Errorf("pgtemp: start: %w: %s %s", err, lastLine(out), lastLine(log))
		}
	}
}

// Stop shuts the server down fast, cutting open connections, as a crash would look to
// a client.
func (c *Cluster) Stop(ctx context.Context) error {
	out, err := c.command(ctx, "pg_ctl", "-D", c.dataDir(), "-m", "fast", "-w", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtemp: stop: %w: %s", err, lastLine(out))
	}
	return nil
}

// Close stops the server (if running) and removes its directory.
func (c *Cluster) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = c.command(ctx, "pg_ctl", "-D", c.dataDir(), "-m", "immediate", "-w", "stop").Run()
	return os.RemoveAll(c.Dir)
}

func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, name)
	if c.runAs != "" {
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs, "--", path}, args...)...)
	}
	return exec.CommandContext(ctx, path, args...)
}

func chownTo(dir, account string) error {
	u, err := user.Lookup(account)
	if err != nil {
		return fmt.Errorf("pgtemp: running as root needs the %q account: %w", account, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("pgtemp: %w", err)
	}
	// The account must be able to reach the directory through its parents.
	for p := filepath.Dir(dir); p != "/" && p != "."; p = filepath.Dir(p) {
		if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("pgtemp: %s is not searchable by %s; choose another parent directory", p, account)
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtemp: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
