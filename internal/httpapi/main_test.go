package httpapi_test

import (
	"testing"

	"github.com/noderuntime/noderuntime/internal/database/dbtest"
)

// Tests that need Postgres (idempotency, authorizations) get fresh databases from dbtest.
func TestMain(m *testing.M) { dbtest.Main(m) }
