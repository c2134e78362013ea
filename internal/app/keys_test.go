package app_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/noderuntime/noderuntime/internal/app"
	"github.com/noderuntime/noderuntime/internal/config"
	"github.com/noderuntime/noderuntime/internal/database/dbtest"
	"github.com/noderuntime/noderuntime/internal/secrets"
)

// A replica started with another key under a stored key ID (pasted wrong) refuses to
// start, naming the variable and the ID and no key, so that a rolling update stops
// there while the replicas with the right key serve. One whose ring lacks a stored ID
// starts and logs how many authorizations it cannot read; the right ring starts quietly.
func TestStartRefusesAKeyThatOpensNoneOfTheAuthorizationsSealedUnderItsID(t *testing.T) {
	e, right, wrong := sealedUnderK1(t)
	for _, c := range []struct {
		name, ring string
		refused    bool
		logged     string
	}{
		{"another key under k1", "k1:" + wrong, true, ""},
		{"no k1", "k2:" + wrong, false, `"keyId":"k1","authorizations":1`},
		{"k1 kept second", "k2:" + wrong + ",k1:" + right, false, ""},
	} {
		ring, err := secrets.ParseKeyRing(c.ring)
		if err != nil {
			t.Fatal(err)
		}
		cfg := e.cfg
		cfg.EncryptionKeys = ring
		var logs lockedBuffer
		a, err := app.New(t.Context(), cfg, slog.New(slog.NewJSONHandler(&logs, nil)))
		if err == nil {
			a.Close()
		}
		cerr, isConfig := errors.AsType[*config.Error](err)
		switch {
		case c.refused && (!isConfig || cerr.Variable != "NODERUNTIME_ENCRYPTION_KEYS" || !strings.Contains(cerr.Problem, `"k1"`)):
			t.Errorf("%s: %v, want NODERUNTIME_ENCRYPTION_KEYS refused, naming k1", c.name, err)
		case !c.refused && err != nil:
			t.Errorf("%s: %v, want a start", c.name, err)
		case err != nil && (strings.Contains(err.Error(), wrong[:16]) || strings.Contains(err.Error(), right[:16])):
			t.Errorf("the refusal repeats a key: %v", err)
		}
		out := logs.String()
		if strings.Contains(out, "does not hold") != (c.logged != "") || !strings.Contains(out, c.logged) {
			t.Errorf("%s: logs %s, want %q", c.name, out, c.logged)
		}
	}
}

// A replica that started while Postgres did not answer could not check its key ring at
// start. It checks it once Postgres answers, before it is first ready: a key pasted
// wrong keeps it out of the Service (the rolling update stops there, as it does at a
// refused start) with the variable and the ID as the reason, instead of becoming ready
// and failing every execution on the authorizations sealed under that ID. Postgres
// itself is up: noderuntime_postgres_up says 1. The right ring becomes ready.
func TestAReplicaStartedWithoutPostgresChecksItsKeysBeforeItIsReady(t *testing.T) {
	e, right, wrong := sealedUnderK1(t)
	for _, c := range []struct {
		name, ring string
		refused    bool
	}{
		{"another key under k1", "k1:" + wrong, true},
		{"the right key", "k1:" + right, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ring, err := secrets.ParseKeyRing(c.ring)
			if err != nil {
				t.Fatal(err)
			}
			sw := dbtest.NewSwitch(t, e.cfg.DatabaseURL)
			sw.Set(false)
			cfg := e.cfg
			cfg.DatabaseURL, cfg.EncryptionKeys = sw.URL, ring
			a, srv := serveApp(t, cfg, quietLogger())
			if code, body := get(t, srv.URL+"/readyz?exclude=postgres"); code != 503 {
				t.Fatalf("postgres never reached: %d %v, want 503", code, body)
			}
			sw.Set(true)
			if !c.refused {
				waitReadyz(t, srv.URL, "ready")
				return
			}
			for deadline := time.Now().Add(20 * time.Second); postgresUp(t, a) != 1; time.Sleep(50 * time.Millisecond) {
				get(t, srv.URL+"/readyz?exclude=postgres")
				if time.Now().After(deadline) {
					t.Fatal("noderuntime_postgres_up still 0 20 s after Postgres came back")
				}
			}
			code, body := get(t, srv.URL+"/readyz?exclude=postgres")
			detail, _ := body["detail"].(string)
			if code != 503 || !strings.Contains(detail, "NODERUNTIME_ENCRYPTION_KEYS") || !strings.Contains(detail, `"k1"`) {
				t.Fatalf("a wrong key under k1, Postgres back: %d %v, want 503 naming NODERUNTIME_ENCRYPTION_KEYS and k1", code, body)
			}
			if strings.Contains(detail, wrong[:16]) || strings.Contains(detail, right[:16]) {
				t.Errorf("the reason repeats a key: %s", detail)
			}
			if code, _ := get(t, srv.URL+"/readyz?exclude=postgres"); code != 503 {
				t.Errorf("the next probe: %d, want 503 still: the key stays wrong", code)
			}
		})
	}
}

// sealedUnderK1 starts the service with one authorization sealed under key ID k1, and
// returns it with the key under k1 (right) and another key (wrong).
func sealedUnderK1(t *testing.T) (e *e2e, right, wrong string) {
	t.Helper()
	e = startE2E(t)
	e.authorize("cc", map[string]any{"kind": "client-credentials", "baseUrl": e.sim.BaseURL(), "domain": e2eDomain,
		"tenantId": "acme-engage", "tenantSecret": e2eCCSecret}, "")
	right = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)) // startE2E's k1
	wrong = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{8}, 32))
	return e, right, wrong
}
