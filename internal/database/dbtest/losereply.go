package dbtest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolLosingTheReplyTo is a pool on dbURL whose connections lose the answer to the next
// statement containing match once the returned switch is armed: the statement reaches
// Postgres, which runs (and commits) it, and the connection breaks as the answer
// arrives. Each query is one message (the simple protocol), so the statement is whole in
// one write and Postgres has done it before it answers. The pool closes when t ends.
func PoolLosingTheReplyTo(t testing.TB, dbURL, match string) (*pgxpool.Pool, *atomic.Bool) {
	t.Helper()
	armed := new(atomic.Bool)
	pool := PoolOnConns(t, dbURL, func(conn net.Conn) net.Conn {
		return &loseReplyTo{Conn: conn, match: []byte(match), armed: armed}
	})
	return pool, armed
}

// PoolOnConns is a pool on dbURL whose every connection is wrap's, for a test that
// breaks them at a chosen moment. Each query is one message (the simple protocol), so a
// wrapper sees a statement whole in one write. The pool closes when t ends.
func PoolOnConns(t testing.TB, dbURL string, wrap func(net.Conn) net.Conn) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	var dialer net.Dialer
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return wrap(conn), nil
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// loseReplyTo is a connection that, once armed, delivers the next statement containing
// match and breaks as Postgres's answer to it arrives.
type loseReplyTo struct {
	net.Conn
	match []byte
	armed *atomic.Bool
	lose  bool
}

func (c *loseReplyTo) Write(b []byte) (int, error) {
	if bytes.Contains(b, c.match) && c.armed.CompareAndSwap(true, false) {
		c.lose = true
	}
	return c.Conn.Write(b)
}

func (c *loseReplyTo) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.lose && n > 0 {
		c.Conn.Close()
		return 0, errors.New("connection broke as the answer arrived")
	}
	return n, err
}
