package authstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/noderuntime/noderuntime/internal/tenant"
)

// audit records what happened to an authorization, in the caller's transaction. detail
// must never hold a secret.
func audit(ctx context.Context, q querier, t tenant.ID, authorizationID, action string, actor Actor, detail map[string]any) error {
	if detail == nil {
		detail = map[string]any{}
	}
	raw, err := json.Marshal(detail)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	var id any
	if authorizationID != "" {
		id = authorizationID
	}
	if _, err := q.Exec(ctx, `insert into audit_events (tenant, authorization_id, action, actor, detail) values ($1, $2, $3, $4, $5)`,
		string(t), id, action, string(actor), string(raw)); err != nil { // text: jsonb takes it under either query protocol
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// AuditEvent is one line of the audit trail.
type AuditEvent struct {
	AuthorizationID string         `json:"authorizationId,omitempty"`
	Action          string         `json:"action"`
	Actor           string         `json:"actor"`
	Detail          map[string]any `json:"detail"`
}

// Audit returns t's audit trail for an authorization, oldest first (the authorization
// may be deleted).
func (s *Store) Audit(ctx context.Context, t tenant.ID, authorizationID string) ([]AuditEvent, error) {
	id, ok := normalizeID(authorizationID)
	if !ok {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `select coalesce(authorization_id::text, ''), action, actor, detail from audit_events
		where tenant = $1 and authorization_id = $2 order by id`, string(t), id)
	if err != nil {
		return nil, fmt.Errorf("read audit trail: %w", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var e AuditEvent
		if err := rows.Scan(&e.AuthorizationID, &e.Action, &e.Actor, &e.Detail); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
