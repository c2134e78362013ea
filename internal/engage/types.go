package engage

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/noderuntime/noderuntime/internal/jsonenc"
	"github.com/noderuntime/noderuntime/internal/jsonscan"
)

// Operation names, used in errors and as the "operation" label of metrics.
const (
	OpSearch            = "search"
	OpCreate            = "create"
	OpAppend            = "append"
	OpUpdate            = "update"
	OpClose             = "close"
	OpAddParticipant    = "add_participant"
	OpRemoveParticipant = "remove_participant"
)

// Target is where one authorization's calls go: the regional Engage base URL (such as
// https://api-us-site-1.imiengage.io/api/v1) and the Engage domain (the tenant).
type Target struct {
	BaseURL string
	Domain  string
}

// SearchRequest is the body of a search. Which fields a channel needs is the node's
// business (ENGAGE.md §3); the client sends what it is given.
type SearchRequest struct {
	Channel            string   `json:"channel,omitempty"`
	CustomerAddress    string   `json:"customeraddress,omitempty"`
	BizAddress         string   `json:"bizaddress,omitempty"`
	Subject            string   `json:"subject,omitempty"`
	ThreadID           string   `json:"threadid,omitempty"`
	BrowserFingerprint string   `json:"browserfingerprint,omitempty"`
	ToRecipients       []string `json:"toRecipients,omitempty"`
	CcRecipients       []string `json:"ccRecipients,omitempty"`
	InReplyTo          string   `json:"inReplyTo,omitempty"`
}

// jsonAppender is a request body that writes its own JSON: byte for byte what
// encoding/json's Encoder writes with SetEscapeHTML(false), final newline included, so
// the hot path's bodies skip reflection. FuzzSearchRequestJSON holds it to that.
type jsonAppender interface {
	appendJSON(dst []byte) []byte
}

func (r *SearchRequest) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	n := len(dst)
	field := func(key, v string) {
		if v == "" {
			return
		}
		if len(dst) > n {
			dst = append(dst, ',')
		}
		dst = append(dst, key...)
		dst = jsonenc.AppendString(dst, v)
	}
	list := func(key string, vs []string) {
		if len(vs) == 0 {
			return
		}
		if len(dst) > n {
			dst = append(dst, ',')
		}
		dst = append(dst, key...)
		for i, v := range vs {
			if i == 0 {
				dst = append(dst, '[')
			} else {
				dst = append(dst, ',')
			}
			dst = jsonenc.AppendString(dst, v)
		}
		dst = append(dst, ']')
	}
	field(`"channel":`, r.Channel)
	field(`"customeraddress":`, r.CustomerAddress)
	field(`"bizaddress":`, r.BizAddress)
	field(`"subject":`, r.Subject)
	field(`"threadid":`, r.ThreadID)
	field(`"browserfingerprint":`, r.BrowserFingerprint)
	list(`"toRecipients":`, r.ToRecipients)
	list(`"ccRecipients":`, r.CcRecipients)
	field(`"inReplyTo":`, r.InReplyTo)
	return append(dst, '}', '\n')
}

// Attachment is one file of a text-with-attachments message.
type Attachment struct {
	MimeType string `json:"mimeType,omitempty"`
	FileName string `json:"fileName,omitempty"`
	FileURL  string `json:"fileUrl,omitempty"`
}

// Message is one message as Connect's own Append node sends it: flat keys, the rich
// objects passed through as JSON (ENGAGE.md §4). Timestamp is RFC 3339 in UTC.
type Message struct {
	Channel      string          `json:"channel,omitempty"`
	Direction    string          `json:"direction,omitempty"`
	MessageType  string          `json:"messagetype,omitempty"`
	Text         string          `json:"text,omitempty"`
	Timestamp    string          `json:"timestamp,omitempty"`
	Attachments  []Attachment    `json:"attachments,omitempty"`
	Subject      string          `json:"subject,omitempty"`
	FromAddress  string          `json:"frmAddress,omitempty"`
	ToRecipients []string        `json:"toRecipients,omitempty"`
	CcRecipients []string        `json:"ccRecipients,omitempty"`
	PlainBody    string          `json:"plainBody,omitempty"`
	HTMLBody     string          `json:"htmlBody,omitempty"`
	StrippedHTML string          `json:"strippedHtml,omitempty"`
	EmailHeaders json.RawMessage `json:"emailHeaders,omitempty"`
	AliasID      string          `json:"aliasId,omitempty"`

	LivechatFormResponse    json.RawMessage `json:"livechatformresponse,omitempty"`
	LcCarousel              json.RawMessage `json:"lcCarousel,omitempty"`
	LcQuickReplies          json.RawMessage `json:"lcQuickReplies,omitempty"`
	LcCarouselResponse      json.RawMessage `json:"lcCarouselResponse,omitempty"`
	LcQuickRepliesResponse  json.RawMessage `json:"lcQuickRepliesResponse,omitempty"`
	AmbFormResponse         json.RawMessage `json:"ambFormResponse,omitempty"`
	AmbListPickerResponse   json.RawMessage `json:"ambListPickerResponse,omitempty"`
	AmbQuickRepliesResponse json.RawMessage `json:"ambQuickRepliesResponse,omitempty"`
	AmbTimePickerResponse   json.RawMessage `json:"ambTimePickerResponse,omitempty"`
	WabButtons              json.RawMessage `json:"wabButtons,omitempty"`
	WabList                 json.RawMessage `json:"wabList,omitempty"`
	WabInteractiveResponse  json.RawMessage `json:"wabInteractiveResponse,omitempty"`
}

// CreateRequest is the body of a create. Live chat sends threadid and the livechat* keys
// instead of the addresses; those key names are our decision (ENGAGE.md §3).
type CreateRequest struct {
	Channel               string    `json:"channel,omitempty"`
	BizAddress            string    `json:"bizaddress,omitempty"`
	CustomerAddress       string    `json:"customeraddress,omitempty"`
	CustomerName          string    `json:"customername,omitempty"`
	ThreadID              string    `json:"threadid,omitempty"`
	LivechatUserID        string    `json:"livechatuserid,omitempty"`
	LivechatAppID         string    `json:"livechatappid,omitempty"`
	LivechatWebsiteDomain string    `json:"livechatwebsitedomain,omitempty"`
	LivechatProactiveID   string    `json:"livechatproactiveid,omitempty"`
	Messages              []Message `json:"messages"`
}

// Conversation statuses as the simulator speaks them (ENGAGE.md §2, our decision).
// Engage may answer others; the node decides what an unknown one means.
const (
	StatusQueued = "queued"
	StatusActive = "active"
	StatusOnHold = "onhold"
	StatusClosed = "closed"
)

// UpdateRequest is the body of an update. Re-open sends Status "queued".
type UpdateRequest struct {
	AliasID string `json:"aliasId,omitempty"`
	Status  string `json:"status,omitempty"`
}

type participantRequest struct {
	Participant string `json:"participant"`
}

// Envelope is what every Engage answer carries besides its value.
type Envelope struct {
	// HTTPStatus is the real HTTP status of the answer; Status is the one in the body.
	HTTPStatus  int
	Status      int
	Code        int
	Description string
	// Raw is the body as received, but for any copy of the request's token, redacted
	// (Search 1.3 outputs it as responsePayload).
	Raw []byte
}

// SearchValue is the value of a search answer. No conversation: ConversationID is empty.
type SearchValue struct {
	ConversationID string
	AliasID        string
	ChatExist      bool
	Status         string
	TeamID         string
	UserID         string
}

// SearchResponse is the answer to Search.
type SearchResponse struct {
	Envelope
	Value SearchValue
}

// CreateResponse is the answer to Create.
type CreateResponse struct {
	Envelope
	TID            string
	ConversationID string
}

// MutationResponse is the answer to every other mutating call.
type MutationResponse struct {
	Envelope
	TID string
}

// wire is the envelope as decoded from JSON, lenient about numbers sent as strings and
// the other way round, since the real API's types are not documented.
type wire[V any] struct {
	Status      flexInt    `json:"status"`
	Code        flexInt    `json:"code"`
	Description flexString `json:"description"`
	TID         flexString `json:"tid"`
	Value       V          `json:"value"`
}

func (w *wire[V]) envelope(httpStatus int, raw []byte) Envelope {
	return Envelope{
		HTTPStatus:  httpStatus,
		Status:      int(w.Status),
		Code:        int(w.Code),
		Description: string(w.Description),
		Raw:         raw,
	}
}

// fastDecoder is a wire type that decodes the plain JSON of a usual answer itself:
// decodeFast answers false for anything else (and may have set some fields by then),
// reset gives the zero value back for encoding/json to start from.
type fastDecoder interface {
	decodeFast(data []byte) bool
	reset()
}

// decodeFast reads the envelope as encoding/json would: each field by its name or a
// case-insensitive match, through the same UnmarshalJSON methods, in order (a repeated
// key is decoded again), other keys ignored.
func (w *wire[V]) decodeFast(data []byte) bool {
	return jsonscan.Object(data, func(key, value []byte) bool {
		switch {
		case fieldName(key, "status"):
			return w.Status.UnmarshalJSON(value) == nil
		case fieldName(key, "code"):
			return w.Code.UnmarshalJSON(value) == nil
		case fieldName(key, "description"):
			return w.Description.UnmarshalJSON(value) == nil
		case fieldName(key, "tid"):
			return w.TID.UnmarshalJSON(value) == nil
		case fieldName(key, "value"):
			f, ok := any(&w.Value).(interface{ decodeFast([]byte) bool })
			return ok && f.decodeFast(value)
		}
		return true
	})
}

func (w *wire[V]) reset() { *w = wire[V]{} }

// fieldName reports whether a JSON key names a field, as encoding/json matches them
// (exactly or folded; keys from jsonscan are ASCII, where folding is ASCII case).
func fieldName(key []byte, name string) bool {
	if len(key) != len(name) {
		return false
	}
	for i := range len(key) {
		a, b := key[i], name[i]
		if a != b && lower(a) != lower(b) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// decodeStruct decodes a value into a struct of flex fields: null leaves it as it is,
// an object sets the fields it names, anything else is encoding/json's type error
// (false here).
func decodeStruct(value []byte, field func(key, value []byte) bool) bool {
	switch {
	case string(value) == "null":
		return true
	case len(value) > 0 && value[0] == '{':
		return jsonscan.Object(value, field)
	}
	return false
}

type searchWire struct {
	ConversationID flexString `json:"conversationId"`
	AliasID        flexString `json:"aliasId"`
	ChatExist      flexBool   `json:"chatExist"`
	Status         flexString `json:"status"`
	TeamID         flexString `json:"teamId"`
	UserID         flexString `json:"userId"`
}

func (v *searchWire) decodeFast(data []byte) bool {
	return decodeStruct(data, func(key, value []byte) bool {
		switch {
		case fieldName(key, "conversationId"):
			return v.ConversationID.UnmarshalJSON(value) == nil
		case fieldName(key, "aliasId"):
			return v.AliasID.UnmarshalJSON(value) == nil
		case fieldName(key, "chatExist"):
			return v.ChatExist.UnmarshalJSON(value) == nil
		case fieldName(key, "status"):
			return v.Status.UnmarshalJSON(value) == nil
		case fieldName(key, "teamId"):
			return v.TeamID.UnmarshalJSON(value) == nil
		case fieldName(key, "userId"):
			return v.UserID.UnmarshalJSON(value) == nil
		}
		return true
	})
}

type createWire struct {
	ConversationID flexString `json:"conversationId"`
}

// complete: a create that went through answers the new conversation's ID (ENGAGE.md
// §4); without it there is no success to report.
func (v *createWire) complete() error {
	if v.ConversationID == "" {
		return errors.New("answer has no conversationId")
	}
	return nil
}

func (v *createWire) decodeFast(data []byte) bool {
	return decodeStruct(data, func(key, value []byte) bool {
		if fieldName(key, "conversationId") {
			return v.ConversationID.UnmarshalJSON(value) == nil
		}
		return true
	})
}

// noValue skips whatever the value holds.
type noValue struct{}

func (*noValue) UnmarshalJSON([]byte) error { return nil }

func (*noValue) decodeFast([]byte) bool { return true }

// flexInt accepts 200, "200", null and an integral number written as a float (200.0,
// 2e2: JavaScript and .NET serializers write them): a success must not fail on how its
// status is spelled.
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		s, err := unquote(b)
		if err != nil {
			return err
		}
		if s == "" {
			return nil
		}
		b = []byte(s)
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		var ok bool
		if n, ok = integralFloat(string(b)); !ok {
			return err
		}
	}
	*f = flexInt(n)
	return nil
}

// unquote decodes a JSON string literal: itself when it is plain (no escapes), through
// encoding/json otherwise. Only that rare path puts a string on the heap.
func unquote(b []byte) (string, error) {
	if s, ok := jsonscan.PlainString(b); ok {
		return s, nil
	}
	var s string
	err := json.Unmarshal(b, &s)
	return s, err
}

// integralFloat reads s as a float that is a whole number an int holds exactly.
func integralFloat(s string) (int, bool) {
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || x != math.Trunc(x) || math.Abs(x) > 1<<53 {
		return 0, false
	}
	return int(x), true
}

// flexString accepts a string, a number or null.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	switch {
	case bytes.Equal(b, []byte("null")):
		return nil
	case len(b) > 0 && b[0] == '"':
		s, err := unquote(b)
		if err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	case jsonscan.IsNumber(b):
		*f = flexString(b) // what json.Number would hold
		return nil
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
		*f = flexString(n)
		return nil
	}
}

var errNotBool = errors.New("not a boolean")

// flexBool accepts true, "true" (in any case: "True" is .NET's), 1 and null.
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "null", "false", `"false"`, "0", `"0"`, `""`:
		*f = false
	case "true", `"true"`, "1", `"1"`:
		*f = true
	default:
		switch strings.ToLower(string(b)) { // the rare spelling, off the usual path
		case `"false"`:
			*f = false
		case `"true"`:
			*f = true
		default:
			return errNotBool
		}
	}
	return nil
}
