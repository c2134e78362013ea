package nodes

import (
	"context"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// Add Participant adds an agent to a conversation (ENGAGE.md §3).
func addParticipant() *definition {
	return &definition{
		id: "add-participant", displayName: "Add Participant", method: "Add Participant",
		success:      []outcomes.Outcome{outcomes.OnAddParticipantSuccess},
		successAlias: outcomes.AliasSuccess,
		when: map[outcomes.Outcome]string{
			outcomes.OnAddParticipantSuccess: "Engage added the participant.",
		},
		rejected:     outcomes.OnAddParticipantFailure,
		rejectedWhen: "Engage said no: a 4xx business error (an unknown conversation, a closed one, an agent already in it, an invalid request, ...).",
		failed:       outcomes.Failure,
		required:     []string{"conversationId", "participant"},
		versions: []delta{
			{version: "1.0", inputs: []string{"conversationId", "participant"}, outputs: []string{"TransId"}},
		},
		prepare: func(_ *Version, in *input) (call, error) {
			id, _ := in.str("conversationId")
			p, _ := in.str("participant")
			return call{do: func(ctx context.Context, c *engage.Client, t engage.Target, token string) (*reply, error) {
				return mutated(c.AddParticipant(ctx, t, token, id, p))
			}}, nil
		},
	}
}
