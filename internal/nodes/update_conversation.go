package nodes

import (
	"context"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// Update Conversation writes a task ID on a conversation (ENGAGE.md §3; how it is
// written is decided in decisions.go). Its output is spelled transID, as its page spells
// it.
func updateConversation() *definition {
	return &definition{
		id: "update-conversation", displayName: "Update Conversation", method: "Update Conversation",
		success:      []outcomes.Outcome{outcomes.OnConversationUpdatedSuccess},
		successAlias: outcomes.AliasSuccess,
		when: map[outcomes.Outcome]string{
			outcomes.OnConversationUpdatedSuccess: "Engage updated the conversation.",
		},
		rejected: outcomes.OnConversationUpdatedFailure,
		// A closed conversation's alias ID may still be written (docs/engage.md): not a
		// refusal to name.
		rejectedWhen: "Engage said no: a 4xx business error (an unknown conversation, an invalid request, ...).",
		failed:       outcomes.Failure,
		required:     []string{"conversationId", "taskId"},
		versions: []delta{
			{version: "1.0", inputs: []string{"conversationId", "taskId"}, outputs: []string{"transID"}},
		},
		prepare: func(_ *Version, in *input) (call, error) {
			id, _ := in.str("conversationId")
			task, _ := in.str("taskId")
			return call{do: func(ctx context.Context, c *engage.Client, t engage.Target, token string) (*reply, error) {
				return mutated(c.Update(ctx, t, token, id, updateForTask(task)))
			}}, nil
		},
	}
}
