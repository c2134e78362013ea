package nodes

import (
	"context"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// Append Message adds a message to a conversation (ENGAGE.md §3). Its versions differ
// only by the message types they allow (decisions.go): 1.3 adds the live chat rich
// types, announcements and the WhatsApp interactive types; 1.4 adds the amb channel.
func appendMessage() *definition {
	return &definition{
		id: "append-message", displayName: "Append Message", method: "Append Message",
		success: []outcomes.Outcome{outcomes.OnAppendMessageSuccess},
		when: map[outcomes.Outcome]string{
			outcomes.OnAppendMessageSuccess: "Engage appended the message.",
		},
		rejected: outcomes.OnAppendMessageFailure,
		failed:   outcomes.Failure,
		required: []string{"conversationId", "channel", "direction", "messageType", "timestamp"},
		versions: []delta{
			{version: "1.0", messages: messagesAppend10,
				inputs:  append([]string{"conversationId", "channel"}, messageInputs...),
				outputs: []string{"TransId"}},
			{version: "1.3", messages: messagesAppend13},
			{version: "1.4", messages: messagesAppend14},
		},
		prepare:    prepareAppend,
		conditions: messageConditions,
	}
}

func prepareAppend(_ *Version, in *input) (call, error) {
	id, _ := in.str("conversationId")
	ch, err := in.channel()
	if err != nil {
		return call{}, err
	}
	msg, err := in.message(ch)
	if err != nil {
		return call{}, err
	}
	return call{do: func(ctx context.Context, c *engage.Client, t engage.Target, token string) (*reply, error) {
		return mutated(c.Append(ctx, t, token, id, msg))
	}}, nil
}

// mutated turns the answer of a mutating call into a reply.
func mutated(resp *engage.MutationResponse, err error) (*reply, error) {
	if err != nil {
		return nil, err
	}
	return &reply{env: resp.Envelope, tid: resp.TID}, nil
}
