package nodes_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/nodes"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// Every rich message type carries its JSON object under the key ENGAGE.md §4 gives it,
// and only that key: a mix-up of two similar types (a carousel and a carousel response)
// would send Engage a message it reads as another.
func TestEveryRichMessageTypeSendsItsObjectUnderItsDocumentedKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		channel, direction, messageType, input, wireKey string
	}{
		{"whatsapp", "outbound", "wab-buttons", "wabButtons", "wabButtons"},
		{"whatsapp", "outbound", "wab-list", "wabList", "wabList"},
		{"whatsapp", "inbound", "wab-interactive-response", "wabInteractiveResponse", "wabInteractiveResponse"},
		{"livechat", "inbound", "lc-form-response", "lcFormResponse", "livechatformresponse"},
		{"livechat", "inbound", "lc-carousel-response", "lcCarouselResponse", "lcCarouselResponse"},
		{"livechat", "inbound", "lc-quick-replies-response", "lcQuickRepliesResponse", "lcQuickRepliesResponse"},
		{"livechat", "outbound", "text-with-lc-carousel", "lcCarousel", "lcCarousel"},
		{"livechat", "outbound", "text-with-lc-quick-replies", "lcQuickReplies", "lcQuickReplies"},
		{"amb", "inbound", "amb-list-picker-response", "ambListPickerResponse", "ambListPickerResponse"},
		{"amb", "inbound", "amb-time-picker-response", "ambTimePickerResponse", "ambTimePickerResponse"},
		{"amb", "inbound", "amb-quick-replies-response", "ambQuickRepliesResponse", "ambQuickRepliesResponse"},
		{"amb", "inbound", "amb-form-response", "ambFormResponse", "ambFormResponse"},
	} {
		t.Run(tc.messageType, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			id := h.seed(tc.channel, "customer-1", "business-1", "active")
			res, calls := h.run(t, "append-message", "1.4", `{"conversationId":"`+id+`","channel":"`+tc.channel+`",
				"direction":"`+tc.direction+`","messageType":"`+tc.messageType+`","timestamp":"`+wireTimestamp+`",
				"`+tc.input+`":{"of":"`+tc.messageType+`"}}`)
			if res.Outcome != outcomes.OnAppendMessageSuccess {
				t.Fatalf("outcome %s %+v", res.Outcome, res.Error)
			}
			c := oneCall(t, calls, http.MethodPost, appendPath(id))
			sameBody(t, c.body, `{"channel":"`+tc.channel+`","direction":"`+tc.direction+`","messagetype":"`+tc.messageType+`",
				"timestamp":"`+wireTimestamp+`","`+tc.wireKey+`":{"of":"`+tc.messageType+`"}}`)
		})
	}
}

// An email needs a sender and a body: plainBody, htmlBody or both (docs/nodes.md).
func TestAnEmailNeedsEitherBodyAndSendsTheOneItHas(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, bodies string
		want         string // the body keys Engage gets; "" : onInvalidData
	}{
		{"plain body only", `"plainBody":"plain"`, `"plainBody":"plain"`},
		{"HTML body only", `"htmlBody":"<p>html</p>"`, `"htmlBody":"<p>html</p>"`},
		{"both bodies", `"plainBody":"plain","htmlBody":"<p>html</p>"`, `"plainBody":"plain","htmlBody":"<p>html</p>"`},
		{"neither body", `"subject":"no body"`, ""},
		{"bodies of only spaces", `"plainBody":"  ","htmlBody":" "`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			id := h.seed("email", "jo@example.test", "support@acme.test", "active")
			res, calls := h.run(t, "append-message", "1.0", `{"conversationId":"`+id+`","channel":"email","direction":"inbound",
				"messageType":"email","timestamp":"`+wireTimestamp+`","fromAddress":"jo@example.test",`+tc.bodies+`}`)
			if tc.want == "" {
				if res.Outcome != outcomes.OnInvalidData || !strings.Contains(res.Error.Message, "plainBody") || len(calls) != 0 {
					t.Fatalf("outcome %s %+v after %d calls, want onInvalidData naming plainBody and no call", res.Outcome, res.Error, len(calls))
				}
				return
			}
			if res.Outcome != outcomes.OnAppendMessageSuccess {
				t.Fatalf("outcome %s %+v", res.Outcome, res.Error)
			}
			c := oneCall(t, calls, http.MethodPost, appendPath(id))
			sameBody(t, c.body, `{"channel":"email","direction":"inbound","messagetype":"email","timestamp":"`+wireTimestamp+`",
				"frmAddress":"jo@example.test",`+tc.want+`}`)
		})
	}
}

// A malformed value of a message is onInvalidData naming the field, and Engage is not
// called (ENGAGE.md §2): Engage would otherwise get a message it cannot use, or the
// runtime would fail to encode it and answer onError.
func TestAMalformedMessageValueIsInvalidDataNamingItAndNeverReachesEngage(t *testing.T) {
	t.Parallel()
	const ts = `"timestamp":"` + wireTimestamp + `"`
	attachment := func(a string) string {
		return `"channel":"facebook","direction":"inbound","messageType":"text-with-attachments",` + ts + `,"attachments":[` + a + `]`
	}
	for _, tc := range []struct {
		name, fields, field string
	}{
		{"a timestamp with an offset other than UTC", `"channel":"sms","direction":"inbound","messageType":"text","text":"hi","timestamp":"2026-03-01T12:00:00+02:00"`, "timestamp"},
		{"a timestamp without a zone", `"channel":"sms","direction":"inbound","messageType":"text","text":"hi","timestamp":"2026-03-01T12:00:00"`, "timestamp"},
		{"an empty list of attachments is no attachments", attachment(``), "attachments"},
		{"an attachment without a MIME type", attachment(`{"fileName":"a.png","fileUrl":"https://files.test/a.png"}`), "attachments[0].mimeType"},
		{"an attachment whose MIME type has no subtype", attachment(`{"mimeType":"png","fileUrl":"https://files.test/a.png"}`), "attachments[0].mimeType"},
		{"an attachment without a URL", attachment(`{"mimeType":"image/png","fileName":"a.png"}`), "attachments[0].fileUrl"},
		{"an attachment with a relative URL", attachment(`{"mimeType":"image/png","fileUrl":"/files/a.png"}`), "attachments[0].fileUrl"},
		{"an attachment with a URL without a host", attachment(`{"mimeType":"image/png","fileUrl":"https:///a.png"}`), "attachments[0].fileUrl"},
		{"an attachment with an ftp URL", attachment(`{"mimeType":"image/png","fileUrl":"ftp://files.test/a.png"}`), "attachments[0].fileUrl"},
		{"the second attachment malformed", attachment(`{"mimeType":"image/png","fileUrl":"https://files.test/a.png"},{"mimeType":"image/png","fileUrl":"files.test/b.png"}`), "attachments[1].fileUrl"},
		{"a rich object as text that is not JSON", `"channel":"whatsapp","direction":"outbound","messageType":"wab-buttons",` + ts + `,"wabButtons":"{\"buttons\": ["`, "wabButtons"},
		{"a rich object as text that is not an object", `"channel":"whatsapp","direction":"outbound","messageType":"wab-buttons",` + ts + `,"wabButtons":"buttons"`, "wabButtons"},
		{"a rich object as text holding a number", `"channel":"whatsapp","direction":"outbound","messageType":"wab-buttons",` + ts + `,"wabButtons":"42"`, "wabButtons"},
		{"a rich object as text holding a string", `"channel":"whatsapp","direction":"outbound","messageType":"wab-buttons",` + ts + `,"wabButtons":"\"buttons\""`, "wabButtons"},
		{"email headers as text holding true", `"channel":"email","direction":"inbound","messageType":"email",` + ts + `,"fromAddress":"jo@example.test","plainBody":"b","emailHeaders":" true "`, "emailHeaders"},
		{"an email sender that is an object", `"channel":"email","direction":"inbound","messageType":"email",` + ts + `,"fromAddress":{"name":"Jo"},"plainBody":"b"`, "fromAddress"},
		{"an email body that is a list", `"channel":"email","direction":"inbound","messageType":"email",` + ts + `,"fromAddress":"jo@example.test","htmlBody":["<p>b</p>"]`, "htmlBody"},
		{"email headers as text that is not JSON", `"channel":"email","direction":"inbound","messageType":"email",` + ts + `,"fromAddress":"jo@example.test","plainBody":"b","emailHeaders":"{X-Id: 1}"`, "emailHeaders"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			res, calls := h.run(t, "append-message", "1.4", `{"conversationId":"c-1",`+tc.fields+`}`)
			if res.Outcome != outcomes.OnInvalidData || res.Error == nil || res.Error.Code != outcomes.CodeInvalidInput {
				t.Fatalf("outcome %s %+v, want onInvalidData", res.Outcome, res.Error)
			}
			if !strings.HasPrefix(res.Error.Message, "input."+tc.field+":") {
				t.Fatalf("message %q does not name input.%s", res.Error.Message, tc.field)
			}
			if len(calls) != 0 {
				t.Fatalf("%d Engage calls, want none", len(calls))
			}
		})
	}
}

// An empty list, null and "" are a field not given: a field another version has
// passes, and a list the message type needs is reported missing (docs/nodes.md).
func TestAnEmptyStringNullOrEmptyListIsAFieldNotGiven(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, version, fields string
		outcome               outcomes.Outcome
	}{
		{"a rich input of a later version given as []", "1.0",
			`"channel":"sms","direction":"inbound","messageType":"text","text":"hi","wabButtons":[ ]`, outcomes.OnAppendMessageSuccess},
		{"a rich input of a later version given as \"\"", "1.0",
			`"channel":"sms","direction":"inbound","messageType":"text","text":"hi","wabButtons":""`, outcomes.OnAppendMessageSuccess},
		{"a rich input of a later version given as null", "1.0",
			`"channel":"sms","direction":"inbound","messageType":"text","text":"hi","lcCarousel":null`, outcomes.OnAppendMessageSuccess},
		{"an alias ID given as \"\"", "1.4",
			`"channel":"sms","direction":"inbound","messageType":"text","text":"hi","messageAliasId":""`, outcomes.OnAppendMessageSuccess},
		{"recipients given as []", "1.0",
			`"channel":"sms","direction":"inbound","messageType":"text","text":"hi","toRecipients":[]`, outcomes.OnAppendMessageSuccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			id := h.seed("sms", "+15550001", "+15559999", "active")
			res, calls := h.run(t, "append-message", tc.version, `{"conversationId":"`+id+`","timestamp":"`+wireTimestamp+`",`+tc.fields+`}`)
			if res.Outcome != tc.outcome {
				t.Fatalf("outcome %s %+v, want %s", res.Outcome, res.Error, tc.outcome)
			}
			c := oneCall(t, calls, http.MethodPost, appendPath(id))
			sameBody(t, c.body, `{"channel":"sms","direction":"inbound","messagetype":"text","text":"hi","timestamp":"`+wireTimestamp+`"}`)
		})
	}
}

// A rich input is a JSON object or array, or JSON text holding one (the catalog's input
// schema); Engage gets the JSON value itself, never the text.
func TestARichInputMayBeAnObjectAnArrayOrJSONTextAndIsSentAsJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, given, sent string
	}{
		{"an object", `{"cards":[{"title":"a"}]}`, `{"cards":[{"title":"a"}]}`},
		{"an array", `[{"title":"a"},{"title":"b"}]`, `[{"title":"a"},{"title":"b"}]`},
		{"text holding an object", `"{\"cards\":[]}"`, `{"cards":[]}`},
		{"text holding an array", `" [{\"title\":\"a\"}] "`, `[{"title":"a"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			id := h.seed("livechat", "user-1", "app-1", "active")
			res, calls := h.run(t, "append-message", "1.3", `{"conversationId":"`+id+`","channel":"livechat","direction":"outbound",
				"messageType":"text-with-lc-carousel","timestamp":"`+wireTimestamp+`","lcCarousel":`+tc.given+`}`)
			if res.Outcome != outcomes.OnAppendMessageSuccess {
				t.Fatalf("outcome %s %+v", res.Outcome, res.Error)
			}
			c := oneCall(t, calls, http.MethodPost, appendPath(id))
			sameBody(t, c.body, `{"channel":"livechat","direction":"outbound","messagetype":"text-with-lc-carousel",
				"timestamp":"`+wireTimestamp+`","lcCarousel":`+tc.sent+`}`)
		})
	}
}

// An attachment is sent with its MIME type, file name and URL; the URL may be http or
// https (ENGAGE.md §3, docs/nodes.md), and the file name is optional.
func TestAnAttachmentIsSentWithItsMIMETypeNameAndHTTPOrHTTPSURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, given, sent string
	}{
		{"an https URL with a file name", `{"mimeType":"image/png","fileName":"a.png","fileUrl":"https://files.example.test/a.png"}`,
			`{"mimeType":"image/png","fileName":"a.png","fileUrl":"https://files.example.test/a.png"}`},
		{"an http URL without a file name", `{"mimeType":"application/pdf","fileUrl":"http://files.example.test/b.pdf"}`,
			`{"mimeType":"application/pdf","fileUrl":"http://files.example.test/b.pdf"}`},
		{"a MIME type and URL with spaces around them", `{"mimeType":" text/plain ","fileName":"c.txt","fileUrl":" HTTP://files.example.test/c.txt "}`,
			`{"mimeType":"text/plain","fileName":"c.txt","fileUrl":"http://files.example.test/c.txt"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			id := h.seed("facebook", "psid-1", "page-1", "active")
			res, calls := h.run(t, "append-message", "1.0", `{"conversationId":"`+id+`","channel":"facebook","direction":"inbound",
				"messageType":"text-with-attachments","timestamp":"`+wireTimestamp+`","attachments":[`+tc.given+`]}`)
			if res.Outcome != outcomes.OnAppendMessageSuccess {
				t.Fatalf("outcome %s %+v", res.Outcome, res.Error)
			}
			c := oneCall(t, calls, http.MethodPost, appendPath(id))
			sameBody(t, c.body, `{"channel":"facebook","direction":"inbound","messagetype":"text-with-attachments",
				"timestamp":"`+wireTimestamp+`","attachments":[`+tc.sent+`]}`)
		})
	}
}

// The 4096-character limit is the message text's (ENGAGE.md §2, docs/nodes.md), whatever
// the type that carries it; an email's subject and bodies have none, and are sent whole.
func TestTheTextLimitBoundsTheMessageTextAndNotAnEmailsBodies(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", nodes.MaxTextLength+1)
	attachment := `"attachments":[{"mimeType":"image/png","fileUrl":"https://files.test/a.png"}]`
	for _, tc := range []struct {
		name, channel, fields string
		sent                  bool
	}{
		{"an email's subject and bodies over the limit", "email", `"direction":"inbound","messageType":"email","fromAddress":"jo@example.test",
			"subject":"` + long + `","plainBody":"` + long + `","htmlBody":"` + long + `","strippedHtml":"` + long + `"`, true},
		{"a text beside attachments over the limit", "facebook", `"direction":"inbound","messageType":"text-with-attachments",` + attachment + `,"text":"` + long + `"`, false},
		{"a text beside a rich object over the limit", "whatsapp", `"direction":"outbound","messageType":"wab-list","wabList":{"rows":[]},"text":"` + long + `"`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newWireHarness(t)
			id := h.seed(tc.channel, "customer-1", "business-1", "active")
			res, calls := h.run(t, "append-message", "1.4", `{"conversationId":"`+id+`","channel":"`+tc.channel+`","timestamp":"`+wireTimestamp+`",`+tc.fields+`}`)
			if !tc.sent {
				if res.Outcome != outcomes.OnInvalidData || !strings.HasPrefix(res.Error.Message, "input.text:") || len(calls) != 0 {
					t.Fatalf("outcome %s %+v after %d calls, want onInvalidData naming input.text and no call", res.Outcome, res.Error, len(calls))
				}
				return
			}
			if res.Outcome != outcomes.OnAppendMessageSuccess {
				t.Fatalf("outcome %s %+v", res.Outcome, res.Error)
			}
			body := decodeJSON(t, "the body Engage received", oneCall(t, calls, http.MethodPost, appendPath(id)).body)
			for _, key := range []string{"subject", "plainBody", "htmlBody", "strippedHtml"} {
				if body[key] != long {
					t.Errorf("%s was not sent whole", key)
				}
			}
		})
	}
}
