package engagesim

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"
)

// Conversation statuses the simulator knows (ENGAGE.md §2, our decision).
const (
	StatusQueued = "queued"
	StatusActive = "active"
	StatusOnHold = "onhold"
	StatusClosed = "closed"
)

// Conversation is one conversation as the simulator stores it.
type Conversation struct {
	ID                    string    `json:"id"`
	Channel               string    `json:"channel"`
	CustomerAddress       string    `json:"customerAddress"`
	BizAddress            string    `json:"bizAddress"`
	CustomerName          string    `json:"customerName,omitempty"`
	ThreadID              string    `json:"threadId,omitempty"`
	Subject               string    `json:"subject,omitempty"`
	LivechatWebsiteDomain string    `json:"livechatWebsiteDomain,omitempty"`
	LivechatProactiveID   string    `json:"livechatProactiveId,omitempty"`
	AliasID               string    `json:"aliasId,omitempty"`
	Status                string    `json:"status"`
	TeamID                string    `json:"teamId,omitempty"`
	UserID                string    `json:"userId,omitempty"`
	Participants          []string  `json:"participants,omitempty"`
	Messages              []Message `json:"messages,omitempty"`
	CreatedAt             time.Time `json:"createdAt"`
}

// Attachment is one file of a message.
type Attachment struct {
	MimeType string `json:"mimeType,omitempty"`
	FileName string `json:"fileName,omitempty"`
	FileURL  string `json:"fileUrl,omitempty"`
}

type attachmentFields Attachment

// UnmarshalJSON decodes strictly, as Message does: "FileURL" is not "fileUrl".
func (a *Attachment) UnmarshalJSON(b []byte) error {
	var f attachmentFields
	if err := strictUnmarshal(b, &f); err != nil {
		return err
	}
	*a = Attachment(f)
	return nil
}

// Message is a message as Engage receives it (ENGAGE.md §4 keys). Raw is the message
// object exactly as it arrived on the wire.
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

	Raw json.RawMessage `json:"-"`
}

type messageFields Message

// UnmarshalJSON decodes strictly (an unknown key is an error: it is how a wire-key typo in
// a client shows up) and keeps the raw object.
func (m *Message) UnmarshalJSON(b []byte) error {
	var f messageFields
	if err := strictUnmarshal(b, &f); err != nil {
		return err
	}
	*m = Message(f)
	m.Raw = slices.Clone(b)
	return nil
}

func (c *Conversation) clone() Conversation {
	out := *c
	out.Participants = slices.Clone(c.Participants)
	out.Messages = slices.Clone(c.Messages)
	return out
}

// store holds conversations per domain under one lock.
type store struct {
	mu      sync.Mutex
	domains map[string]*domainStore
	keep    int // Config.KeepMessages
}

type domainStore struct {
	byID map[string]*Conversation
	// byKey indexes channel + customer + business address, the search key, in creation
	// order.
	byKey map[searchKey][]*Conversation
}

type searchKey struct{ channel, customer, biz string }

func keyOf(c *Conversation) searchKey {
	return searchKey{c.Channel, c.CustomerAddress, c.BizAddress}
}

func (st *store) init() { st.domains = map[string]*domainStore{} }

// domain returns the domain's store, creating it. Caller holds st.mu.
func (st *store) domain(name string) *domainStore {
	d, ok := st.domains[name]
	if !ok {
		d = &domainStore{byID: map[string]*Conversation{}, byKey: map[searchKey][]*Conversation{}}
		st.domains[name] = d
	}
	return d
}

// insert adds c, replacing a conversation with the same ID. Caller holds st.mu.
func (d *domainStore) insert(c *Conversation) {
	if old, ok := d.byID[c.ID]; ok {
		k := keyOf(old)
		d.byKey[k] = slices.DeleteFunc(d.byKey[k], func(x *Conversation) bool { return x == old })
	}
	d.byID[c.ID] = c
	k := keyOf(c)
	d.byKey[k] = append(d.byKey[k], c)
}

// find returns the conversation a search means: among those with the key (and thread or
// subject where given), the newest one not closed, else the newest closed one (our
// decision). Caller holds st.mu.
func (d *domainStore) find(k searchKey, threadID, subject string) *Conversation {
	var closed *Conversation
	list := d.byKey[k]
	for i := len(list) - 1; i >= 0; i-- {
		c := list[i]
		if threadID != "" && c.ThreadID != threadID {
			continue
		}
		if subject != "" && c.Subject != subject {
			continue
		}
		if c.Status != StatusClosed {
			return c
		}
		if closed == nil {
			closed = c
		}
	}
	return closed
}

// SeedConversation stores c in domain as is (any status, any messages) and returns its
// ID, generated when c.ID is empty. An empty status is queued. A conversation with the
// same ID is replaced.
func (s *Sim) SeedConversation(domain string, c Conversation) string {
	c = c.clone()
	if c.ID == "" {
		c.ID = newID(12)
	}
	if c.Status == "" {
		c.Status = StatusQueued
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now()
	}
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	s.store.domain(domain).insert(&c)
	return c.ID
}

// SetStatus sets a conversation's status to anything, known to Engage or not.
func (s *Sim) SetStatus(domain, id, status string) error {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	c, ok := s.store.domain(domain).byID[id]
	if !ok {
		return notFound("conversation", id)
	}
	c.Status = status
	return nil
}

// Conversation returns a copy of a stored conversation, messages included.
func (s *Sim) Conversation(domain, id string) (Conversation, bool) {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	c, ok := s.store.domain(domain).byID[id]
	if !ok {
		return Conversation{}, false
	}
	return c.clone(), true
}

// Conversations returns copies of every conversation of a domain, oldest first.
func (s *Sim) Conversations(domain string) []Conversation {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	d := s.store.domain(domain)
	out := make([]Conversation, 0, len(d.byID))
	for _, c := range d.byID {
		out = append(out, c.clone())
	}
	slices.SortFunc(out, func(a, b Conversation) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out
}
