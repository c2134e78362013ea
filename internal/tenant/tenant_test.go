package tenant_test

import (
	"context"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/tenant"
)

func TestKeysResolveTheirTenantOnly(t *testing.T) {
	keys, err := tenant.ParseKeys("acme:" + tenant.HashKey("a1") + ", acme:" + tenant.HashKey("a2") + ",globex:" + tenant.HashKey("g1"))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]tenant.ID{"a1": "acme", "a2": "acme", "g1": "globex"} {
		if got, ok := keys.Lookup(key); !ok || got != want {
			t.Errorf("%s: %q %v", key, got, ok)
		}
	}
	for _, key := range []string{"", "a3", tenant.HashKey("a1")} {
		if got, ok := keys.Lookup(key); ok {
			t.Errorf("%q accepted as %s", key, got)
		}
	}
	if got := keys.Tenants(); len(got) != 2 {
		t.Errorf("tenants %v", got)
	}
}

func TestParseKeysRejectsClearKeysAndBadTenants(t *testing.T) {
	empty := tenant.HashKey("") // an empty bearer token would sign in
	for _, s := range []string{"", "acme", "acme:plain", "acme:" + tenant.HashKey("x")[:60], "bad tenant:" + tenant.HashKey("x"), "acme:" + empty, "acme:" + strings.ToUpper(empty)} {
		if _, err := tenant.ParseKeys(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestTenantTravelsInTheContext(t *testing.T) {
	if _, ok := tenant.FromContext(context.Background()); ok {
		t.Fatal("tenant in an empty context")
	}
	if id, ok := tenant.FromContext(tenant.WithID(context.Background(), "acme")); !ok || id != "acme" {
		t.Fatalf("%q %v", id, ok)
	}
}
