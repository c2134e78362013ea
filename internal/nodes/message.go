package nodes

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/noderuntime/noderuntime/internal/engage"
)

// The message that Append Message appends and Create Conversation starts with: one
// decoder for both, driven by the version's message set (decisions.go).

// messageInputs are the input fields of a message besides the rich objects, which a
// version has when one of its message types carries them.
var messageInputs = []string{
	"direction", "messageType", "timestamp", "text", "attachments",
	"fromAddress", "toRecipients", "ccRecipients", "subject", "emailHeaders",
	"plainBody", "htmlBody", "strippedHtml", "messageAliasId",
}

type messageType struct {
	name string
	// needs: at least one field of each group must be given.
	needs [][]string
	// uses: optional fields the type also sends.
	uses []string
	// rich is the field holding the type's JSON object, if any; it is needed, and the
	// text is optional beside it.
	rich string
}

func (mt *messageType) requirements() [][]string {
	if mt.rich != "" {
		return append(slices.Clone(mt.needs), []string{mt.rich})
	}
	return mt.needs
}

func (mt *messageType) optional() []string {
	if mt.rich != "" {
		return append(slices.Clone(mt.uses), "text")
	}
	return mt.uses
}

var messageTypeByName = func() map[string]*messageType {
	m := make(map[string]*messageType, len(messageTypes))
	for i := range messageTypes {
		m[messageTypes[i].name] = &messageTypes[i]
	}
	return m
}()

// message reads and checks the message for a conversation on channel: its direction
// and type must be allowed for the channel in this version, and the type's fields
// given.
func (in *input) message(channel string) (engage.Message, error) {
	v := in.v
	dir, err := in.need("direction", "")
	if err != nil {
		return engage.Message{}, err
	}
	dir = strings.ToLower(dir)
	if !slices.Contains(directionOrder, dir) {
		return engage.Message{}, invalid("direction", "unknown direction %q; want inbound, outbound or announcement", clip(dir))
	}
	types := v.msgTypes[msgKey{channel: channel, direction: dir}]
	if len(types) == 0 {
		since := v.node.firstVersionWith(func(x *Version) bool { return len(x.msgTypes[msgKey{channel: channel, direction: dir}]) > 0 })
		if since != "" {
			return engage.Message{}, invalid("direction", "%s messages on %s are not available in %s (they are from %s on)", dir, channel, v, since)
		}
		return engage.Message{}, invalid("direction", "%s messages on %s are not available in %s", dir, channel, v)
	}
	typ, err := in.need("messageType", "")
	if err != nil {
		return engage.Message{}, err
	}
	typ = strings.ToLower(typ)
	mt, ok := messageTypeByName[typ]
	if !ok {
		return engage.Message{}, invalid("messageType", "unknown message type %q; %s %s messages in %s take %s", clip(typ), dir, channel, v, strings.Join(types, ", "))
	}
	if !v.msgAllowed[msgKey{channel, dir, typ}] {
		since := v.node.firstVersionWith(func(x *Version) bool { return x.msgAllowed[msgKey{channel, dir, typ}] })
		if since != "" {
			return engage.Message{}, invalid("messageType", "%s is not available for %s %s messages in %s (it is from %s on); this version takes %s", typ, dir, channel, v, since, strings.Join(types, ", "))
		}
		return engage.Message{}, invalid("messageType", "%s is not available for %s %s messages; %s takes %s", typ, dir, channel, v, strings.Join(types, ", "))
	}
	ts, err := in.timestamp("timestamp", "")
	if err != nil {
		return engage.Message{}, err
	}
	msg := engage.Message{Channel: channel, Direction: dir, MessageType: typ, Timestamp: ts}
	if msg.AliasID, err = in.str("messageAliasId"); err != nil {
		return engage.Message{}, err
	}
	why := "for messageType " + typ
	for _, group := range mt.requirements() {
		if !in.anyGiven(group) {
			if len(group) == 1 {
				return engage.Message{}, required(group[0], why)
			}
			return engage.Message{}, invalid(group[0], "required %s (or %s)", why, strings.Join(group[1:], ", "))
		}
		for _, name := range group {
			if err := in.setMessageField(&msg, name); err != nil {
				return engage.Message{}, err
			}
		}
	}
	for _, name := range mt.optional() {
		if err := in.setMessageField(&msg, name); err != nil {
			return engage.Message{}, err
		}
	}
	return msg, nil
}

func (in *input) anyGiven(names []string) bool {
	for _, n := range names {
		if in.given(n) {
			return true
		}
	}
	return false
}

// setMessageField copies one input field into the message.
func (in *input) setMessageField(m *engage.Message, name string) (err error) {
	switch name {
	case "text":
		m.Text, err = in.text(name)
	case "attachments":
		m.Attachments, err = in.attachments(name)
	case "fromAddress":
		m.FromAddress, err = in.str(name)
	case "subject":
		m.Subject, err = in.str(name)
	case "toRecipients":
		m.ToRecipients, err = in.strs(name)
	case "ccRecipients":
		m.CcRecipients, err = in.strs(name)
	case "emailHeaders":
		m.EmailHeaders, err = in.object(name)
	case "plainBody":
		m.PlainBody, err = in.str(name)
	case "htmlBody":
		m.HTMLBody, err = in.str(name)
	case "strippedHtml":
		m.StrippedHTML, err = in.str(name)
	default:
		dst := richField(m, name)
		if dst == nil {
			panic("nodes: no message field for input " + name)
		}
		*dst, err = in.object(name)
	}
	return err
}

// richField is where a rich input object goes in Engage's message.
func richField(m *engage.Message, name string) *json.RawMessage {
	var p *json.RawMessage
	switch name {
	case "lcFormResponse":
		p = &m.LivechatFormResponse
	case "lcCarouselResponse":
		p = &m.LcCarouselResponse
	case "lcQuickRepliesResponse":
		p = &m.LcQuickRepliesResponse
	case "lcCarousel":
		p = &m.LcCarousel
	case "lcQuickReplies":
		p = &m.LcQuickReplies
	case "wabButtons":
		p = &m.WabButtons
	case "wabList":
		p = &m.WabList
	case "wabInteractiveResponse":
		p = &m.WabInteractiveResponse
	case "ambListPickerResponse":
		p = &m.AmbListPickerResponse
	case "ambTimePickerResponse":
		p = &m.AmbTimePickerResponse
	case "ambQuickRepliesResponse":
		p = &m.AmbQuickRepliesResponse
	case "ambFormResponse":
		p = &m.AmbFormResponse
	}
	return p
}
