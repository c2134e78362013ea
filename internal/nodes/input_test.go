package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// refusingCredentials fails the test if an execution asks for a token: invalid input
// must be refused before.
type refusingCredentials struct{ t testing.TB }

func (c refusingCredentials) Token(context.Context, tenant.ID, string) (Credential, error) {
	c.t.Error("a token was asked for")
	return Credential{}, errors.New("no")
}

func (c refusingCredentials) Refresh(context.Context, tenant.ID, string, secrets.Value) (Credential, error) {
	c.t.Error("a refresh was asked for")
	return Credential{}, errors.New("no")
}

// prepared runs the decoder of a version and returns the Engage request it would send.
func prepared(t *testing.T, node, version, input string) (*input, call, error) {
	t.Helper()
	v, err := NewRegistry().Lookup(node, version)
	if err != nil {
		t.Fatal(err)
	}
	in, err := parseInput(v, json.RawMessage(input))
	if err != nil {
		return nil, call{}, err
	}
	if err := in.require(v.node.def.required, ""); err != nil {
		return in, call{}, err
	}
	c, err := v.node.def.prepare(v, in)
	return in, c, err
}

func TestInputsAreReadLeniently(t *testing.T) {
	t.Parallel()
	v, _ := NewRegistry().Lookup("append-message", "1.4")
	in, err := parseInput(v, json.RawMessage(`{
		"conversationId": 12345, "channel": " WhatsApp ", "direction": "OUTBOUND",
		"messageType": "Wab-Buttons", "timestamp": "2026-03-01T12:00:00.250+00:00",
		"wabButtons": "{\"buttons\":[1,2]}", "text": "  keep my spaces  ",
		"toRecipients": " a@x.example , ,b@x.example ", "ccRecipients": [], "subject": null,
		"messageAliasId": ""}`))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := in.message("whatsapp")
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := in.str("conversationId"); id != "12345" {
		t.Errorf("a number as string: %q", id)
	}
	if msg.Direction != "outbound" || msg.MessageType != "wab-buttons" || msg.Timestamp != "2026-03-01T12:00:00.25Z" {
		t.Errorf("message %+v", msg)
	}
	if string(msg.WabButtons) != `{"buttons":[1,2]}` || msg.Text != "  keep my spaces  " || msg.AliasID != "" {
		t.Errorf("message %+v", msg)
	}
	if list, _ := in.strs("toRecipients"); strings.Join(list, "|") != "a@x.example|b@x.example" {
		t.Errorf("comma-separated list: %q", list)
	}
	if list, _ := in.strs("ccRecipients"); list != nil {
		t.Errorf("empty list: %q", list)
	}
}

// RFC 3339 §5.6 allows "t" and "z" in lower case: such a timestamp is RFC 3339 in UTC,
// sent to Engage as the usual upper case; the catalog's schema takes it too.
func TestATimestampWithALowerCaseTOrZIsRFC3339(t *testing.T) {
	t.Parallel()
	v, _ := NewRegistry().Lookup("append-message", "1.4")
	for _, given := range []string{"2026-03-01t12:00:00Z", "2026-03-01T12:00:00z", "2026-03-01t12:00:00.5z", "2026-03-01t12:00:00+00:00"} {
		in, err := parseInput(v, json.RawMessage(`{"timestamp":"`+given+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		got, err := in.timestamp("timestamp", "")
		if err != nil {
			t.Errorf("%s: %v", given, err)
			continue
		}
		if want := strings.ToUpper(strings.Replace(given, "+00:00", "Z", 1)); got != want {
			t.Errorf("%s: sent %s, want %s", given, got, want)
		}
	}
	pattern := regexp.MustCompile(v.fieldSchema(fieldByName["timestamp"])["pattern"].(string))
	if !pattern.MatchString("2026-03-01t12:00:00z") {
		t.Errorf("the schema's pattern %s refuses a lower case z", pattern)
	}
	for _, bad := range []string{"2026-03-01 12:00:00Z", "2026-03-01x12:00:00Z", "2026-03-01t12:00:00+01:00"} {
		in, _ := parseInput(v, json.RawMessage(`{"timestamp":"`+bad+`"}`))
		if _, err := in.timestamp("timestamp", ""); err == nil {
			t.Errorf("%s: taken", bad)
		}
	}
}

// A number given for an address or ID is taken as the digits of the whole number it is,
// however the flow wrote it: a flow whose numbers are floating point writes 15551234567
// as 1.5551234567E10, and a search for "1.5551234567E10" would find no conversation. A
// number with a fraction is no address: onInvalidData. A text keeps a number as written.
func TestANumberForAnAddressIsTheDigitsOfItsWholeNumber(t *testing.T) {
	t.Parallel()
	for given, want := range map[string]string{
		`15551234567`: "15551234567", `1.5551234567E10`: "15551234567", `1.5551234567e+10`: "15551234567",
		`15551234567.0`: "15551234567", `1555123456700e-2`: "15551234567", `-12`: "-12", `0`: "0", `0.0e3`: "0",
		`1e3`: "1000", `120E-1`: "12",
	} {
		_, c, err := prepared(t, "search-conversation", "1.3", `{"channel":"sms","bizAddress":"b","customerAddress":`+given+`}`)
		if err != nil {
			t.Errorf("%s: %v", given, err)
			continue
		}
		if got := captureSearch(t, c).CustomerAddress; got != want {
			t.Errorf("%s: sent customeraddress %q, want %q", given, got, want)
		}
	}
	for _, given := range []string{`1.5`, `1555123456.75e1`, `1e-3`, `1e999999999`, `1` + strings.Repeat("0", 64)} {
		_, _, err := prepared(t, "search-conversation", "1.3", `{"channel":"sms","bizAddress":"b","customerAddress":`+given+`}`)
		if err == nil || !strings.HasPrefix(err.Error(), "input.customerAddress: want a string") {
			t.Errorf("%.20s: %v", given, err)
		}
	}
	v, _ := NewRegistry().Lookup("append-message", "1.4")
	in, err := parseInput(v, json.RawMessage(`{"text":1.50}`))
	if err != nil {
		t.Fatal(err)
	}
	if text, err := in.text("text"); text != "1.50" || err != nil {
		t.Errorf("a text of 1.50: %q, %v", text, err)
	}
}

func TestCreateSendsTheCustomerAddressWhenThereIsNoName(t *testing.T) {
	t.Parallel()
	const msg = `"direction":"inbound","messageType":"text","timestamp":"2026-03-01T12:00:00Z","text":"hi"`
	for _, tc := range []struct {
		name, version, input, wantName, wantProactive string
	}{
		{"sms without a name", "1.3", `{"channel":"sms","bizAddress":"b","customerAddress":"+1555",` + msg + `}`, "+1555", ""},
		{"sms with a name", "1.3", `{"channel":"sms","bizAddress":"b","customerAddress":"+1555","customerName":"Ada",` + msg + `}`, "Ada", ""},
		{"email ignores the name", "1.3", `{"channel":"email","bizAddress":"b","customerAddress":"a@x","customerName":"Ada","direction":"inbound","messageType":"email","timestamp":"2026-03-01T12:00:00Z","fromAddress":"a@x","plainBody":"hi"}`, "a@x", ""},
		{"livechat with its proactive ID", "1.3", `{"channel":"livechat","threadId":"t","livechatUserId":"u","livechatAppId":"a","livechatWebsiteDomain":"d","livechatProactiveId":"p",` + msg + `}`, "u", "p"},
	} {
		_, c, err := prepared(t, "create-conversation", tc.version, tc.input)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		// The request is inside the call; send it to a stub Engage to see it.
		got := captureCreate(t, c)
		if got.CustomerName != tc.wantName || got.LivechatProactiveID != tc.wantProactive {
			t.Errorf("%s: sent customername %q, proactive %q", tc.name, got.CustomerName, got.LivechatProactiveID)
		}
	}
}

func TestInvalidInputNamesTheField(t *testing.T) {
	t.Parallel()
	const ts = `"timestamp":"2026-03-01T12:00:00Z"`
	for _, tc := range []struct {
		node, version, input, want string
	}{
		{"search-conversation", "1.3", `[]`, "input: want a JSON object"},
		{"search-conversation", "1.3", `{"channel":"sms","bizAddress":{},"customerAddress":"c"}`, "input.bizAddress: want a string"},
		{"search-conversation", "1.3", `{"channel":"email","bizAddress":"b","customerAddress":"c","subject":"s","toRecipients":5}`, "input.toRecipients: want a list"},
		{"search-conversation", "1.3", `{"channel":"sms","bizAddress":"   ","customerAddress":"c"}`, "input.bizAddress: required for channel sms"},
		{"search-conversation", "1.1", `{"channel":"abc","bizAddress":"b","customerAddress":"c"}`, "input.channel: channel amb is not available in search-conversation 1.1 (it is from 1.3 on)"},
		{"create-conversation", "1.3", `{"channel":"amb","bizAddress":"b","customerAddress":"c"}`, "input.channel: channel amb is not available in create-conversation 1.3; it takes"},
		{"append-message", "1.0", `{"conversationId":"c","channel":"livechat","direction":"announcement","messageType":"text","text":"x",` + ts + `}`, "input.direction: announcement messages on livechat are not available in append-message 1.0 (they are from 1.3 on)"},
		{"append-message", "1.3", `{"conversationId":"c","channel":"livechat","direction":"announcement","messageType":"text-with-attachments",` + ts + `}`, "input.messageType: text-with-attachments is not available for announcement livechat messages"},
		{"append-message", "1.4", `{"conversationId":"c","channel":"sms","direction":"inbound","messageType":"fax",` + ts + `}`, `input.messageType: unknown message type "fax"; inbound sms messages in append-message 1.4 take text`},
		{"append-message", "1.4", `{"conversationId":"c","channel":"sms","direction":"inbound","messageType":"text","text":"x","timestamp":"yesterday"}`, `input.timestamp: "yesterday" is not an RFC 3339 timestamp`},
		{"append-message", "1.4", `{"conversationId":"c","channel":"whatsapp","direction":"outbound","messageType":"wab-list","wabList":"not json",` + ts + `}`, "input.wabList: want a JSON object or array (or a string holding one)"},
		{"append-message", "1.4", `{"conversationId":"c","channel":"whatsapp","direction":"outbound","messageType":"wab-list","wabList":7,` + ts + `}`, "input.wabList: want a JSON object or array (or a string holding one)"},
		// A rich object may be an array too (the catalog's schema says so): the message
		// names both, not only the object.
		{"append-message", "1.4", `{"conversationId":"c","channel":"whatsapp","direction":"outbound","messageType":"wab-list","wabList":"\"text\"",` + ts + `}`, "input.wabList: want a JSON object or array (or a string holding one)"},
		{"append-message", "1.4", `{"conversationId":"c","channel":"api","direction":"inbound","messageType":"text-with-attachments","attachments":[{"fileUrl":"https://x/a"}],` + ts + `}`, "input.attachments[0].mimeType: required"},
		{"append-message", "1.4", `{"conversationId":"c","channel":"api","direction":"inbound","messageType":"text-with-attachments","attachments":[{"mimeType":"a/b","fileUrl":"https://x/a","size":1}],` + ts + `}`, "input.attachments: want a list of {mimeType, fileName, fileUrl}"},
		{"append-message", "1.4", `{"conversationId":"c","channel":"api","direction":"inbound","messageType":"text-with-attachments","attachments":[{"mimeType":"a/b"}],` + ts + `}`, "input.attachments[0].fileUrl: required"},
		{"append-message", "1.4", `{"conversationId":"c","channel":"sms","direction":"sideways","messageType":"text","text":"x",` + ts + `}`, `input.direction: unknown direction "sideways"; want inbound, outbound or announcement`},
		{"append-message", "1.4", `{"conversationId":"c","channel":"email","direction":"inbound","messageType":"email","fromAddress":"a@x",` + ts + `}`, "input.plainBody: required for messageType email (or htmlBody)"},
		{"create-conversation", "1.2", `{"channel":"livechat","livechatProactiveId":"p"}`, "input.livechatProactiveId: not an input of create-conversation 1.2 (it is one from 1.3 on)"},
		{"update-conversation", "1.0", `{"conversationId":"c","taskID":"t"}`, "input.taskID: not an input of update-conversation 1.0; did you mean taskId?"},
		// Of several fields the version does not have, the first in byte order is named,
		// whatever their order in the input: the same input always gets the same message.
		{"close-conversation", "1.0", `{"zone":1,"conversationId":"c","colour":"red","Conversationid":"d"}`, "input.Conversationid: not an input of close-conversation 1.0; did you mean conversationId?"},
		{"close-conversation", "1.0", `{"zone":1,"conversationId":"c","colour":"red"}`, "input.colour: not an input of close-conversation 1.0"},
		// A key the version does not have is named clipped, as a value is, and quoted when
		// it would not read as written: the answer does not repeat a megabyte of key, nor
		// a line break or a bidirectional control in the middle of the message.
		{"close-conversation", "1.0", `{"conversationId":"c","` + strings.Repeat("k", 5000) + `":1}`, "input." + strings.Repeat("k", 64) + "...: not an input of close-conversation 1.0"},
		{"close-conversation", "1.0", `{"conversationId":"c","a\nb\u202ec":1}`, `input."a\nb\u202ec": not an input of close-conversation 1.0`},
		// The empty key is a name like any other: never taken for "no bad field".
		{"close-conversation", "1.0", `{"":"x","conversationId":"c"}`, `input: the empty key "" is not an input of close-conversation 1.0`},
		{"close-conversation", "1.0", `{"conversationId":"c","":1,"zone":1}`, `input: the empty key "" is not an input of close-conversation 1.0`},
	} {
		_, _, err := prepared(t, tc.node, tc.version, tc.input)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s %s %s:\n got %v\nwant %s...", tc.node, tc.version, tc.input, err, tc.want)
		}
		if _, ok := err.(*InvalidInputError); err != nil && !ok {
			t.Errorf("%T is not an *InvalidInputError", err)
		}
	}
}

func TestInvalidDataNeverAsksForAToken(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	x := NewExecutor(ExecutorOptions{Engage: engage.New(engage.Options{}), Credentials: refusingCredentials{t}})
	for _, v := range r.Versions() {
		res := x.Execute(t.Context(), v, Request{Tenant: "acme", AuthorizationID: "a", Input: json.RawMessage(`{"colour":"red"}`)})
		if res.Outcome != outcomes.OnInvalidData || res.Error == nil || !strings.Contains(res.Error.Message, "input.colour") {
			t.Errorf("%s: %+v", v, res)
		}
		if len(res.Output) != len(v.outputs) {
			t.Errorf("%s: output %v, want every declared variable", v, res.Output)
		}
	}
}

// captureCreate runs a prepared create call against a stub Engage and returns the body
// it sent.
func captureCreate(t *testing.T, c call) engage.CreateRequest {
	t.Helper()
	return captureBody[engage.CreateRequest](t, c, `{"status":201,"code":1000,"tid":"t1","value":{"conversationId":"c1"}}`)
}

// captureSearch runs a prepared search call against a stub Engage and returns the body
// it sent.
func captureSearch(t *testing.T, c call) engage.SearchRequest {
	t.Helper()
	return captureBody[engage.SearchRequest](t, c, `{"status":200,"code":1000,"value":{"chatExist":false}}`)
}

// captureBody runs a prepared call against a stub Engage that answers answer, and
// returns the body the call sent, decoded as T.
func captureBody[T any](t *testing.T, c call, answer string) T {
	t.Helper()
	var got T
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(answer))
	}))
	defer srv.Close()
	client := engage.New(engage.Options{})
	defer client.CloseIdleConnections()
	if _, err := c.do(t.Context(), client, engage.Target{BaseURL: srv.URL, Domain: "d"}, "tok"); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestARequiredFieldOfOnlySpacesIsNotGiven(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, node, version, input, field string }{
		{"email sender", "append-message", "1.4", `{"conversationId":"c1","channel":"email","direction":"inbound","messageType":"email","timestamp":"2026-03-01T12:00:00Z","fromAddress":"   ","plainBody":"hi"}`, "fromAddress"},
		{"email bodies", "append-message", "1.4", `{"conversationId":"c1","channel":"email","direction":"inbound","messageType":"email","timestamp":"2026-03-01T12:00:00Z","fromAddress":"a@x","plainBody":" \n ","htmlBody":"\t"}`, "plainBody"},
		{"message text", "append-message", "1.0", `{"conversationId":"c1","channel":"sms","direction":"inbound","messageType":"text","timestamp":"2026-03-01T12:00:00Z","text":"   "}`, "text"},
		{"email subject of a search", "search-conversation", "1.3", `{"channel":"email","bizAddress":"b@x","customerAddress":"a@x","subject":"   "}`, "subject"},
		{"conversation ID", "close-conversation", "1.0", `{"conversationId":"  "}`, "conversationId"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := prepared(t, c.node, c.version, c.input)
			var ie *InvalidInputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("got %v, want invalid input naming %s", err, c.field)
			}
		})
	}
}

// A value quoted in a message is kept whole up to 64 bytes; past that it is cut on a
// character boundary, so the message stays valid UTF-8.
func TestAQuotedValueIsClippedPast64BytesOnACharacterBoundary(t *testing.T) {
	t.Parallel()
	a63 := strings.Repeat("a", 63)
	for _, tc := range []struct{ name, in, want string }{
		{"exactly the limit", a63 + "b", a63 + "b"},
		{"one byte over", a63 + "bc", a63 + "b..."},
		{"a character across the limit", a63 + "é", a63 + "..."},
	} {
		if got := clip(tc.in); got != tc.want {
			t.Errorf("%s: clip(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

// The catalog's JSON Schema of an ID that Engage's URL path carries says exactly what
// the decoder takes: a value passes its pattern, maxLength and "not" exactly when the
// decoder accepts it, for every character up to U+00FF inside an ID, and for the lengths
// around the limit.
func TestTheCatalogSchemaOfAPathIDTakesExactlyWhatTheDecoderTakes(t *testing.T) {
	t.Parallel()
	v, err := NewRegistry().Lookup("remove-participant", "1.0")
	if err != nil {
		t.Fatal(err)
	}
	props := v.inputSchema()["properties"].(map[string]any)
	values := []string{".", "..", "...", strings.Repeat("é", MaxPathIDLength), strings.Repeat("é", MaxPathIDLength+1),
		strings.Repeat("a", MaxPathIDLength), strings.Repeat("a", MaxPathIDLength+1)}
	for r := rune(0); r <= 0xff; r++ {
		values = append(values, "a"+string(r)+"b")
	}
	for _, field := range []string{"conversationId", "participant"} {
		s := props[field].(map[string]any)
		pattern := regexp.MustCompile(s["pattern"].(string))
		maxLen, _ := s["maxLength"].(int)
		not := s["not"].(map[string]any)["enum"].([]string)
		for _, val := range values {
			schemaTakes := pattern.MatchString(val) && utf8.RuneCountInString(val) <= maxLen && !slices.Contains(not, val)
			in := map[string]string{"conversationId": "c1", "participant": "p1"}
			in[field] = val
			raw, _ := json.Marshal(in)
			_, _, err := prepared(t, "remove-participant", "1.0", string(raw))
			if decoderTakes := err == nil; decoderTakes != schemaTakes {
				t.Errorf("%s = %.40q: the decoder takes it: %v (%v), the schema: %v", field, val, decoderTakes, err, schemaTakes)
			}
		}
	}
}
