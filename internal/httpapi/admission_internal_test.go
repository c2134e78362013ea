package httpapi

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/noderuntime/noderuntime/internal/tenant"
)

// A tenant refused for the replica's cap, not its own, gives its own slot back: a
// later execution of that tenant is admitted once the replica has room.
func TestARefusalForTheReplicasCapGivesTheTenantsSlotBack(t *testing.T) {
	a := NewAdmission(AdmissionOptions{Max: 2, PerTenant: 1, Tenants: []tenant.ID{"a", "b", "c"}}, prometheus.NewRegistry())
	ownA, refused := a.enter("a")
	if refused != nil {
		t.Fatal("a refused on an empty replica")
	}
	if _, refused := a.enter("b"); refused != nil {
		t.Fatal("b refused with one slot left")
	}
	if _, refused := a.enter("c"); refused != &a.replicaFull {
		t.Fatalf("c on a full replica: %v, want the replica's refusal", refused)
	}
	a.leave(ownA)
	if _, refused := a.enter("c"); refused != nil {
		t.Fatalf("c refused once the replica had room: %s", refused.Detail)
	}
	if _, refused := a.enter("untracked"); refused != &a.replicaFull {
		t.Fatalf("a tenant without a count of its own on a full replica: %v", refused)
	}
}
