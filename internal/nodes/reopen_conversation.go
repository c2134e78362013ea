package nodes

import (
	"context"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// Re-open Conversation moves a closed conversation back to the queue (ENGAGE.md §3;
// decisions.go). Engage refuses one that is not closed: ConversationReopenFailed. The
// node page calls the method "Reopen Conversation"; the seed's table "Re-open
// Conversation", listed as an alias.
func reopenConversation() *definition {
	return &definition{
		id: "reopen-conversation", displayName: "Re-open Conversation", method: "Reopen Conversation",
		methodAliases: []string{"Re-open Conversation"},
		success:       []outcomes.Outcome{outcomes.ConversationReopened},
		when: map[outcomes.Outcome]string{
			outcomes.ConversationReopened: "Engage re-opened the conversation: it is queued again.",
		},
		rejected: outcomes.ConversationReopenFailed,
		// A closed conversation is what Re-open expects; one that is not closed is the
		// refusal (ENGAGE.md §3).
		rejectedWhen: "Engage said no: a 4xx business error (a conversation that is not closed, an unknown conversation, an invalid request, ...).",
		failed:       outcomes.OnFailure,
		required:     []string{"conversationId"},
		versions: []delta{
			{version: "1.0", inputs: []string{"conversationId"}, outputs: []string{"TransId"}},
		},
		prepare: func(_ *Version, in *input) (call, error) {
			id, _ := in.str("conversationId")
			return call{do: func(ctx context.Context, c *engage.Client, t engage.Target, token string) (*reply, error) {
				return mutated(c.Update(ctx, t, token, id, reopenUpdate))
			}}, nil
		},
	}
}
