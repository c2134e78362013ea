package nodes

import (
	"context"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// Close Conversation closes a conversation (ENGAGE.md §3). The node page calls the
// method "Close Chat"; the seed's table "Close conversation", listed as an alias.
func closeConversation() *definition {
	return &definition{
		id: "close-conversation", displayName: "Close conversation", method: "Close Chat",
		methodAliases: []string{"Close conversation"},
		success:       []outcomes.Outcome{outcomes.OnConversationClosed},
		when: map[outcomes.Outcome]string{
			outcomes.OnConversationClosed: "Engage closed the conversation.",
		},
		rejected:     outcomes.OnCloseConversationFailure,
		rejectedWhen: "Engage said no: a 4xx business error (an unknown conversation, one already closed, an invalid request, ...).",
		failed:       outcomes.OnFailure,
		required:     []string{"conversationId"},
		versions: []delta{
			{version: "1.0", inputs: []string{"conversationId"}, outputs: []string{"TransId"}},
		},
		prepare: func(_ *Version, in *input) (call, error) {
			id, _ := in.str("conversationId")
			return call{do: func(ctx context.Context, c *engage.Client, t engage.Target, token string) (*reply, error) {
				return mutated(c.Close(ctx, t, token, id))
			}}, nil
		},
	}
}
