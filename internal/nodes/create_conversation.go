package nodes

import (
	"cmp"
	"context"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// Create Conversation starts a conversation with its first message (ENGAGE.md §3). Its
// message types follow Append's: 1.0 as Append 1.0, 1.2 as Append 1.3; 1.3 adds the
// optional livechatProactiveId.
func createConversation() *definition {
	return &definition{
		id: "create-conversation", displayName: "Create Conversation", method: "Create Conversation",
		success: []outcomes.Outcome{outcomes.OnConversationCreated},
		when: map[outcomes.Outcome]string{
			outcomes.OnConversationCreated: "Engage created the conversation with its first message.",
		},
		rejected: outcomes.OnConversationFailed,
		// There is no conversation yet: Engage refuses the request itself (a 400 in
		// docs/engage.md's model; no conversation to be unknown, closed or in conflict).
		rejectedWhen: "Engage said no: a 4xx business error (an invalid request, such as a channel, party or message Engage does not take, ...).",
		failed:       outcomes.Failure,
		// Engage's success that lacks the new conversation's ID is no success to report
		// (engage.Client.Create).
		failedWhen: "Engage failed otherwise: a 5xx, a 429, a connection failure, an answer that is not Engage's readable envelope (a proxy's error page, say) or a success without the new conversation's ID, or the circuit breaker open while Engage keeps failing.",
		outputWhen: map[string]string{
			"conversationId": "The ID of the conversation Engage created (returned by our decision; Connect leaves it to a later $(conversation)); empty on every failure.",
		},
		required: []string{"channel", "direction", "messageType", "timestamp"},
		versions: []delta{
			{version: "1.0", messages: messagesAppend10,
				inputs: append([]string{
					"channel", "bizAddress", "customerAddress", "customerName",
					"threadId", "livechatUserId", "livechatAppId", "livechatWebsiteDomain",
				}, messageInputs...),
				outputs: []string{"TransId", "conversationId"}},
			{version: "1.2", messages: messagesAppend13},
			{version: "1.3", inputs: []string{"livechatProactiveId"}},
		},
		prepare: prepareCreate,
		succeed: func(_ *Version, r *reply) outcomes.Result {
			return outcomes.Success(outcomes.OnConversationCreated, map[string]any{"TransId": r.tid, "conversationId": r.conversationID})
		},
		conditions: func(v *Version) []any {
			return append(channelConditions(v, createNeeds), messageConditions(v)...)
		},
	}
}

// createNeeds are the fields each channel asks for besides the message. Live chat names
// its parties differently and asks for no addresses.
var createNeeds = map[string]channelNeeds{
	"sms":      {required: []string{"bizAddress", "customerAddress"}, optional: []string{"customerName"}},
	"facebook": {required: []string{"bizAddress", "customerAddress"}, optional: []string{"customerName"}},
	"email":    {required: []string{"bizAddress", "customerAddress"}},
	"livechat": {required: []string{"threadId", "livechatUserId", "livechatAppId", "livechatWebsiteDomain"}, optional: []string{"customerName", "livechatProactiveId"}},
	"whatsapp": {required: []string{"bizAddress", "customerAddress"}, optional: []string{"customerName"}},
	"amb":      {required: []string{"bizAddress", "customerAddress"}, optional: []string{"customerName"}},
	"api":      {required: []string{"bizAddress", "customerAddress"}, optional: []string{"customerName"}},
}

func prepareCreate(v *Version, in *input) (call, error) {
	ch, err := in.channel()
	if err != nil {
		return call{}, err
	}
	if err := in.require(createNeeds[ch].required, "for channel "+ch); err != nil {
		return call{}, err
	}
	req := engage.CreateRequest{Channel: ch}
	name, err := in.str("customerName")
	if err != nil {
		return call{}, err
	}
	switch ch {
	case "livechat":
		req.ThreadID, _ = in.str("threadId")
		req.LivechatUserID, _ = in.str("livechatUserId")
		req.LivechatAppID, _ = in.str("livechatAppId")
		req.LivechatWebsiteDomain, _ = in.str("livechatWebsiteDomain")
		if v.inputSet["livechatProactiveId"] {
			if req.LivechatProactiveID, err = in.str("livechatProactiveId"); err != nil {
				return call{}, err
			}
		}
		req.CustomerName = cmp.Or(name, req.LivechatUserID)
	case "email":
		// The email form has no name: the customer is their address.
		req.BizAddress, _ = in.str("bizAddress")
		req.CustomerAddress, _ = in.str("customerAddress")
		req.CustomerName = req.CustomerAddress
	default:
		req.BizAddress, _ = in.str("bizAddress")
		req.CustomerAddress, _ = in.str("customerAddress")
		req.CustomerName = cmp.Or(name, req.CustomerAddress)
	}
	msg, err := in.message(ch)
	if err != nil {
		return call{}, err
	}
	req.Messages = []engage.Message{msg}
	return call{do: func(ctx context.Context, c *engage.Client, t engage.Target, token string) (*reply, error) {
		resp, err := c.Create(ctx, t, token, req)
		if err != nil {
			return nil, err
		}
		return &reply{env: resp.Envelope, tid: resp.TID, conversationID: resp.ConversationID}, nil
	}}, nil
}
