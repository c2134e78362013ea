package engagesim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Envelope codes (our decision: Engage's real codes are not documented).
const (
	CodeOK           = 1000
	CodeInvalid      = 1001
	CodeUnauthorized = 1002
	CodeForbidden    = 1003
	CodeNotFound     = 1004
	CodeConflict     = 1009
	CodeRateLimited  = 1029
	CodeServerError  = 1500
)

// Channels the simulator accepts (ENGAGE.md §3 wire values).
var channels = []string{"sms", "facebook", "email", "livechat", "whatsapp", "amb", "api"}

// messageTypes are the message types Engage knows, each with the key of the JSON object
// it must carry (Message.rich); "" means text or attachments carry the message.
var messageTypes = map[string]string{
	"text":                       "",
	"text-with-attachments":      "",
	"email":                      "",
	"wab-buttons":                "wabButtons",
	"wab-list":                   "wabList",
	"wab-interactive-response":   "wabInteractiveResponse",
	"lc-form-response":           "livechatformresponse",
	"lc-carousel-response":       "lcCarouselResponse",
	"lc-quick-replies-response":  "lcQuickRepliesResponse",
	"text-with-lc-carousel":      "lcCarousel",
	"text-with-lc-quick-replies": "lcQuickReplies",
	"amb-list-picker-response":   "ambListPickerResponse",
	"amb-time-picker-response":   "ambTimePickerResponse",
	"amb-quick-replies-response": "ambQuickRepliesResponse",
	"amb-form-response":          "ambFormResponse",
}

// messageRules are the message types each channel takes, by direction: ENGAGE.md §3's
// table with every version's column together (Engage knows no node versions). An empty
// direction is inbound and outbound; announcement is live chat's, text only.
var messageRules = []struct {
	channel, direction string
	types              []string
}{
	{"sms", "", []string{"text"}},
	{"facebook", "", []string{"text", "text-with-attachments"}},
	{"email", "", []string{"email"}},
	{"whatsapp", "", []string{"text", "text-with-attachments"}},
	{"whatsapp", "outbound", []string{"wab-buttons", "wab-list"}},
	{"whatsapp", "inbound", []string{"wab-interactive-response"}},
	{"livechat", "inbound", []string{"text", "text-with-attachments", "lc-form-response", "lc-carousel-response", "lc-quick-replies-response"}},
	{"livechat", "outbound", []string{"text-with-attachments", "text-with-lc-carousel", "text-with-lc-quick-replies"}},
	{"livechat", "announcement", []string{"text"}},
	{"amb", "", []string{"text-with-attachments", "amb-list-picker-response", "amb-time-picker-response", "amb-quick-replies-response", "amb-form-response"}},
	{"api", "", []string{"text", "text-with-attachments"}},
}

// typeAllowed reports whether channel takes messages of type typ in direction.
func typeAllowed(channel, direction, typ string) bool {
	for _, r := range messageRules {
		if r.channel != channel || !slices.Contains(r.types, typ) {
			continue
		}
		if r.direction == direction || (r.direction == "" && direction != "announcement") {
			return true
		}
	}
	return false
}

// rich returns the rich object under its wire key (a value of messageTypes).
func (m *Message) rich(field string) json.RawMessage {
	switch field {
	case "wabButtons":
		return m.WabButtons
	case "wabList":
		return m.WabList
	case "wabInteractiveResponse":
		return m.WabInteractiveResponse
	case "livechatformresponse":
		return m.LivechatFormResponse
	case "lcCarouselResponse":
		return m.LcCarouselResponse
	case "lcQuickRepliesResponse":
		return m.LcQuickRepliesResponse
	case "lcCarousel":
		return m.LcCarousel
	case "lcQuickReplies":
		return m.LcQuickReplies
	case "ambListPickerResponse":
		return m.AmbListPickerResponse
	case "ambTimePickerResponse":
		return m.AmbTimePickerResponse
	case "ambQuickRepliesResponse":
		return m.AmbQuickRepliesResponse
	case "ambFormResponse":
		return m.AmbFormResponse
	}
	return nil
}

// envelope is every answer of the conversation API.
type envelope struct {
	Status      int    `json:"status"`
	Code        int    `json:"code"`
	Description string `json:"description"`
	Value       any    `json:"value,omitempty"`
	TID         string `json:"tid,omitempty"`
}

func writeEnvelope(w http.ResponseWriter, status, code int, desc string, value any, tid string) {
	writeJSON(w, status, envelope{Status: status, Code: code, Description: desc, Value: value, TID: tid})
}

func fail(w http.ResponseWriter, status, code int, format string, args ...any) {
	writeEnvelope(w, status, code, fmt.Sprintf(format, args...), nil, "")
}

func newTID() string { return "tid-" + newID(16) }

// api wraps a conversation operation: count it, apply faults, check the token for the
// path's domain.
func (s *Sim) api(op string, h func(w http.ResponseWriter, r *http.Request, d *domainCall)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.counters.call(op)
		eff, ok := s.applyAPIFaults(w, r, op)
		if !ok {
			return
		}
		domain := r.PathValue("domain")
		// The scheme is case-insensitive (RFC 9110 §11.1).
		token := ""
		if h := r.Header.Get("Authorization"); len(h) > len("Bearer ") && strings.EqualFold(h[:len("Bearer ")], "Bearer ") {
			token = h[len("Bearer "):]
		}
		switch s.checkAccess(token, domain) {
		case tokenMissing:
			w.Header().Set("WWW-Authenticate", `Bearer realm="engage"`)
			fail(w, http.StatusUnauthorized, CodeUnauthorized, "missing bearer token")
			return
		case tokenInvalid:
			w.Header().Set("WWW-Authenticate", `Bearer realm="engage", error="invalid_token"`)
			fail(w, http.StatusUnauthorized, CodeUnauthorized, "invalid, expired or revoked access token")
			return
		case tokenWrongDomain:
			fail(w, http.StatusForbidden, CodeForbidden, "access token is not valid for domain %q", domain)
			return
		}
		h(w, r, &domainCall{domain: domain, unknownStatus: eff.unknownStatus, noTID: eff.noTID})
	}
}

// domainCall is what a conversation handler knows of its call besides the request: the
// path's domain, which the token was checked against, and how the faults that fired
// change a successful answer (effect).
type domainCall struct {
	domain        string
	unknownStatus string
	noTID         bool
}

// tid is the transaction ID of a change that went through: a fresh one, unless a fault
// leaves it out.
func (d *domainCall) tid() string {
	if d.noTID {
		return ""
	}
	return newTID()
}

// decode reads a JSON body strictly into v; on failure it answers 400 and reports false.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	raw, ok := readBody(w, r)
	return ok && unmarshalBody(w, raw, v)
}

// readBody reads the request's body, at most 1 MiB; on failure it answers and reports
// false.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			fail(w, http.StatusRequestEntityTooLarge, CodeInvalid, "body over 1 MiB")
		} else {
			// Not an empty 200: a client would take that for an answer.
			fail(w, http.StatusBadRequest, CodeInvalid, "unreadable body: %v", err)
		}
		return nil, false
	}
	return raw, true
}

// unmarshalBody reads raw strictly into v; on failure it answers 400 and reports false.
func unmarshalBody(w http.ResponseWriter, raw []byte, v any) bool {
	if err := strictUnmarshal(raw, v); err != nil {
		fail(w, http.StatusBadRequest, CodeInvalid, "invalid JSON body: %v", err)
		return false
	}
	return true
}

type searchBody struct {
	Channel            string   `json:"channel"`
	CustomerAddress    string   `json:"customeraddress"`
	BizAddress         string   `json:"bizaddress"`
	Subject            string   `json:"subject"`
	ThreadID           string   `json:"threadid"`
	BrowserFingerprint string   `json:"browserfingerprint"`
	ToRecipients       []string `json:"toRecipients"`
	CcRecipients       []string `json:"ccRecipients"`
	InReplyTo          string   `json:"inReplyTo"`
}

type searchValue struct {
	ConversationID string `json:"conversationId,omitempty"`
	AliasID        string `json:"aliasId,omitempty"`
	ChatExist      bool   `json:"chatExist"`
	Status         string `json:"status,omitempty"`
	TeamID         string `json:"teamId,omitempty"`
	UserID         string `json:"userId,omitempty"`
}

func (s *Sim) handleSearch(w http.ResponseWriter, r *http.Request, d *domainCall) {
	var b searchBody
	if !decode(w, r, &b) {
		return
	}
	if msg := checkChannel(b.Channel); msg != "" {
		fail(w, http.StatusBadRequest, CodeInvalid, "%s", msg)
		return
	}
	switch {
	case b.CustomerAddress == "":
		fail(w, http.StatusBadRequest, CodeInvalid, "customeraddress is required")
		return
	case b.BizAddress == "":
		fail(w, http.StatusBadRequest, CodeInvalid, "bizaddress is required")
		return
	case b.Channel == "livechat" && b.ThreadID == "":
		fail(w, http.StatusBadRequest, CodeInvalid, "threadid is required for livechat")
		return
	case b.Channel == "email" && b.Subject == "":
		fail(w, http.StatusBadRequest, CodeInvalid, "subject is required for email")
		return
	}
	thread, subject := "", ""
	if b.Channel == "livechat" {
		thread = b.ThreadID
	}
	if b.Channel == "email" {
		subject = b.Subject
	}
	var v searchValue
	s.store.mu.Lock()
	if c := s.store.domain(d.domain).find(searchKey{b.Channel, b.CustomerAddress, b.BizAddress}, thread, subject); c != nil {
		v = searchValue{ConversationID: c.ID, AliasID: c.AliasID, ChatExist: true, Status: c.Status, TeamID: c.TeamID, UserID: c.UserID}
	}
	s.store.mu.Unlock()
	if d.unknownStatus != "" {
		// The fault shows an answer no node knows, found conversation or not.
		if v.ConversationID == "" {
			v = searchValue{ConversationID: "sim-unknown-status", ChatExist: true}
		}
		v.Status = d.unknownStatus
	}
	desc := "conversation found"
	if !v.ChatExist {
		desc = "no conversation found"
	}
	writeEnvelope(w, http.StatusOK, CodeOK, desc, &v, "")
}

func checkChannel(ch string) string {
	if ch == "" {
		return "channel is required"
	}
	if !slices.Contains(channels, ch) {
		return fmt.Sprintf("unknown channel %q", ch)
	}
	return ""
}

// checkMessage validates a message for a conversation on channel; it returns the
// description of the first problem, or "".
func checkMessage(m *Message, channel string) string {
	if m.Channel == "" {
		return "message channel is required"
	}
	if m.Channel != channel {
		return fmt.Sprintf("message channel %q differs from the conversation's %q", m.Channel, channel)
	}
	switch m.Direction {
	case "inbound", "outbound", "announcement":
	case "":
		return "direction is required"
	default:
		return fmt.Sprintf("unknown direction %q", m.Direction)
	}
	if m.MessageType == "" {
		return "messagetype is required"
	}
	field, ok := messageTypes[m.MessageType]
	if !ok {
		return fmt.Sprintf("unknown messagetype %q", m.MessageType)
	}
	if !typeAllowed(channel, m.Direction, m.MessageType) {
		return fmt.Sprintf("messagetype %q is not allowed for %s messages on %s", m.MessageType, m.Direction, channel)
	}
	if m.Timestamp == "" {
		return "timestamp is required"
	}
	if _, err := time.Parse(time.RFC3339, m.Timestamp); err != nil {
		return fmt.Sprintf("timestamp %q is not RFC 3339", m.Timestamp)
	}
	switch m.MessageType {
	case "text":
		if m.Text == "" {
			return "text is required for messagetype text"
		}
	case "text-with-attachments":
		if len(m.Attachments) == 0 {
			return "attachments are required for messagetype text-with-attachments"
		}
		for i, a := range m.Attachments {
			if a.FileURL == "" || a.MimeType == "" {
				return fmt.Sprintf("attachment %d needs mimeType and fileUrl", i)
			}
		}
	case "email":
		if m.FromAddress == "" {
			return "frmAddress is required for messagetype email"
		}
		if m.PlainBody == "" && m.HTMLBody == "" {
			return "plainBody or htmlBody is required for messagetype email"
		}
	}
	if field != "" {
		raw := bytes.TrimSpace(m.rich(field))
		if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
			return fmt.Sprintf("%s is required for messagetype %s", field, m.MessageType)
		}
		// "Each rich type carries its JSON object" (ENGAGE.md §3): not an object
		// encoded once more as a string, nor a number or a boolean. An array passes:
		// the runtime sends one (a carousel's cards) and ENGAGE.md does not rule it out
		// clearly enough to refuse it.
		if raw[0] != '{' && raw[0] != '[' {
			return fmt.Sprintf("%s must be a JSON object for messagetype %s", field, m.MessageType)
		}
	}
	return ""
}

type createBody struct {
	Channel               string    `json:"channel"`
	BizAddress            string    `json:"bizaddress"`
	CustomerAddress       string    `json:"customeraddress"`
	CustomerName          string    `json:"customername"`
	ThreadID              string    `json:"threadid"`
	LivechatUserID        string    `json:"livechatuserid"`
	LivechatAppID         string    `json:"livechatappid"`
	LivechatWebsiteDomain string    `json:"livechatwebsitedomain"`
	LivechatProactiveID   string    `json:"livechatproactiveid"`
	Messages              []Message `json:"messages"`
}

func (s *Sim) handleCreate(w http.ResponseWriter, r *http.Request, d *domainCall) {
	var b createBody
	if !decode(w, r, &b) {
		return
	}
	if msg := checkChannel(b.Channel); msg != "" {
		fail(w, http.StatusBadRequest, CodeInvalid, "%s", msg)
		return
	}
	c := &Conversation{
		Channel: b.Channel, CustomerAddress: b.CustomerAddress, BizAddress: b.BizAddress,
		CustomerName: b.CustomerName, ThreadID: b.ThreadID, Status: StatusQueued,
		LivechatWebsiteDomain: b.LivechatWebsiteDomain, LivechatProactiveID: b.LivechatProactiveID,
	}
	if b.Channel == "livechat" {
		// Live chat names its parties differently; they are what a search gives as
		// customeraddress (user ID) and bizaddress (app ID).
		for _, req := range []struct{ v, name string }{
			{b.ThreadID, "threadid"}, {b.LivechatUserID, "livechatuserid"},
			{b.LivechatAppID, "livechatappid"}, {b.LivechatWebsiteDomain, "livechatwebsitedomain"},
		} {
			if req.v == "" {
				fail(w, http.StatusBadRequest, CodeInvalid, "%s is required for livechat", req.name)
				return
			}
		}
		c.CustomerAddress, c.BizAddress = b.LivechatUserID, b.LivechatAppID
	} else {
		switch {
		case b.CustomerAddress == "":
			fail(w, http.StatusBadRequest, CodeInvalid, "customeraddress is required")
			return
		case b.BizAddress == "":
			fail(w, http.StatusBadRequest, CodeInvalid, "bizaddress is required")
			return
		}
	}
	if len(b.Messages) == 0 {
		fail(w, http.StatusBadRequest, CodeInvalid, "messages must hold the first message")
		return
	}
	for i := range b.Messages {
		if msg := checkMessage(&b.Messages[i], b.Channel); msg != "" {
			fail(w, http.StatusBadRequest, CodeInvalid, "message %d: %s", i, msg)
			return
		}
	}
	if b.Channel == "email" {
		c.Subject = b.Messages[0].Subject
	}
	c.Messages = b.Messages
	c.ID = newID(12)
	c.CreatedAt = s.now()
	s.store.mu.Lock()
	s.store.domain(d.domain).insert(c)
	s.store.mu.Unlock()
	writeEnvelope(w, http.StatusCreated, CodeOK, "conversation created", map[string]string{"conversationId": c.ID}, d.tid())
}

// withConversation runs fn on the path's conversation under the store lock; an unknown
// one is 404. fn answers an error by returning status, code and description.
func (s *Sim) withConversation(w http.ResponseWriter, r *http.Request, d *domainCall, okDesc string, fn func(c *Conversation) (int, int, string)) {
	id := r.PathValue("id")
	s.store.mu.Lock()
	c, ok := s.store.domain(d.domain).byID[id]
	status, code, desc := http.StatusNotFound, CodeNotFound, fmt.Sprintf("conversation %q not found", id)
	if ok {
		status, code, desc = fn(c)
	}
	s.store.mu.Unlock()
	if status != 0 {
		fail(w, status, code, "%s", desc)
		return
	}
	writeEnvelope(w, http.StatusOK, CodeOK, okDesc, map[string]string{"conversationId": id}, d.tid())
}

func (s *Sim) handleAppend(w http.ResponseWriter, r *http.Request, d *domainCall) {
	var m Message
	if !decode(w, r, &m) {
		return
	}
	s.withConversation(w, r, d, "message appended", func(c *Conversation) (int, int, string) {
		if msg := checkMessage(&m, c.Channel); msg != "" {
			return http.StatusBadRequest, CodeInvalid, msg
		}
		if c.Status == StatusClosed {
			return http.StatusConflict, CodeConflict, "conversation is closed"
		}
		c.Messages = append(c.Messages, m)
		if keep := s.store.keep; keep > 0 && len(c.Messages) >= 2*keep {
			// Dropped in batches, so an append stays O(1) amortized.
			c.Messages = append(c.Messages[:0:0], c.Messages[len(c.Messages)-keep:]...)
		}
		return 0, 0, ""
	})
}

type updateBody struct {
	AliasID *string `json:"aliasId"`
	Status  *string `json:"status"`
}

func (s *Sim) handleUpdate(w http.ResponseWriter, r *http.Request, d *domainCall) {
	var b updateBody
	if !decode(w, r, &b) {
		return
	}
	if b.AliasID == nil && b.Status == nil {
		fail(w, http.StatusBadRequest, CodeInvalid, "nothing to update: give aliasId or status")
		return
	}
	if b.Status != nil && *b.Status != StatusQueued {
		fail(w, http.StatusBadRequest, CodeInvalid, "status can only be set to %q (re-open)", StatusQueued)
		return
	}
	s.withConversation(w, r, d, "conversation updated", func(c *Conversation) (int, int, string) {
		if b.Status != nil {
			if c.Status != StatusClosed {
				return http.StatusConflict, CodeConflict, "conversation is not closed"
			}
			c.Status = StatusQueued
		}
		if b.AliasID != nil {
			c.AliasID = *b.AliasID
		}
		return 0, 0, ""
	})
}

func (s *Sim) handleClose(w http.ResponseWriter, r *http.Request, d *domainCall) {
	// Close takes no body; tolerate "{}" and nothing else, sent with a length or chunked.
	raw, ok := readBody(w, r)
	if !ok {
		return
	}
	var empty struct{}
	if len(raw) > 0 && !unmarshalBody(w, raw, &empty) {
		return
	}
	s.withConversation(w, r, d, "conversation closed", func(c *Conversation) (int, int, string) {
		if c.Status == StatusClosed {
			return http.StatusConflict, CodeConflict, "conversation is already closed"
		}
		c.Status = StatusClosed
		return 0, 0, ""
	})
}

type participantBody struct {
	Participant string `json:"participant"`
}

func (s *Sim) handleAddParticipant(w http.ResponseWriter, r *http.Request, d *domainCall) {
	var b participantBody
	if !decode(w, r, &b) {
		return
	}
	if b.Participant == "" {
		fail(w, http.StatusBadRequest, CodeInvalid, "participant is required")
		return
	}
	s.withConversation(w, r, d, "participant added", func(c *Conversation) (int, int, string) {
		switch {
		case c.Status == StatusClosed:
			return http.StatusConflict, CodeConflict, "conversation is closed"
		case slices.Contains(c.Participants, b.Participant):
			return http.StatusConflict, CodeConflict, "participant is already in the conversation"
		}
		c.Participants = append(c.Participants, b.Participant)
		if c.UserID == "" {
			c.UserID = b.Participant
		}
		// An agent joining a waiting conversation picks it up (our decision).
		if c.Status == StatusQueued {
			c.Status = StatusActive
		}
		return 0, 0, ""
	})
}

func (s *Sim) handleRemoveParticipant(w http.ResponseWriter, r *http.Request, d *domainCall) {
	p := r.PathValue("participant")
	s.withConversation(w, r, d, "participant removed", func(c *Conversation) (int, int, string) {
		i := slices.Index(c.Participants, p)
		if i < 0 {
			return http.StatusNotFound, CodeNotFound, fmt.Sprintf("participant %q is not in the conversation", p)
		}
		c.Participants = slices.Delete(c.Participants, i, i+1)
		if c.UserID == p {
			c.UserID = ""
			if len(c.Participants) > 0 {
				c.UserID = c.Participants[0]
			}
		}
		return 0, 0, ""
	})
}
