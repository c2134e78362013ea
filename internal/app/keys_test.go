package app_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/app"
	"github.com/noderuntime/noderuntime/internal/config"
	"github.com/noderuntime/noderuntime/internal/secrets"
)

// A replica started with another key under a stored key ID (pasted wrong) refuses to
// start, naming the variable and the ID and no key, so that a rolling update stops
// there while the replicas with the right key serve. One whose ring lacks a stored ID
// starts and logs how many authorizations it cannot read; the right ring starts quietly.
func TestStartRefusesAKeyThatOpensNoneOfTheAuthorizationsSealedUnderItsID(t *testing.T) {
	e := startE2E(t)
	e.authorize("cc", map[string]any{"kind": "client-credentials", "baseUrl": e.sim.BaseURL(), "domain": e2eDomain,
		"tenantId": "acme-engage", "tenantSecret": e2eCCSecret}, "")
	right := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)) // startE2E's k1
	wrong := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{8}, 32))
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
