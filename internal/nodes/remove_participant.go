package nodes

import (
	"context"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// Remove Participant removes an agent from a conversation (ENGAGE.md §3).
func removeParticipant() *definition {
	return &definition{
		id: "remove-participant", displayName: "Remove Participant", method: "Remove Participant",
		success: []outcomes.Outcome{outcomes.OnParticipantRemoved},
		when: map[outcomes.Outcome]string{
			outcomes.OnParticipantRemoved: "Engage removed the participant.",
		},
		rejected: outcomes.OnRemoveParticipantFailure,
		// An agent may still be removed from a closed conversation (docs/engage.md): not
		// a refusal to name.
		rejectedWhen: "Engage said no: a 4xx business error (an unknown conversation, an agent who is not in it, an invalid request, ...).",
		failed:       outcomes.OnFailure,
		required:     []string{"conversationId", "participant"},
		versions: []delta{
			{version: "1.0", inputs: []string{"conversationId", "participant"}, outputs: []string{"TransId"}},
		},
		prepare: func(_ *Version, in *input) (call, error) {
			id, _ := in.str("conversationId")
			p, _ := in.str("participant")
			return call{do: func(ctx context.Context, c *engage.Client, t engage.Target, token string) (*reply, error) {
				return mutated(c.RemoveParticipant(ctx, t, token, id, p))
			}}, nil
		},
	}
}
