// Package migrations embeds the SQL migrations into the binary. Files are applied in
// order by tern (internal/database), each in its own transaction.
package migrations

import "embed"

// FS holds the migration files, named NNN_description.sql.
//
//go:embed *.sql
var FS embed.FS
