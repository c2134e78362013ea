package nodes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/jsonscan"
)

// InvalidInputError says why an input is onInvalidData. Field names the input field at
// fault ("" when it is the input as a whole).
type InvalidInputError struct {
	Field   string
	Problem string
}

func (e *InvalidInputError) Error() string {
	if e.Field == "" {
		return "input: " + e.Problem
	}
	return "input." + e.Field + ": " + e.Problem
}

func invalid(field, format string, args ...any) *InvalidInputError {
	return &InvalidInputError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// input is a node's input object, field by field, read lazily: a field is decoded only
// when the chosen channel and message type use it. An absent field, null, "" and []
// all mean "not given".
type input struct {
	v *Version
	m map[string]json.RawMessage
}

// parseInput reads the input object and refuses fields the version does not have.
func parseInput(v *Version, raw json.RawMessage) (*input, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, invalid("", "want a JSON object")
	}
	m, ok := splitObject(raw)
	if !ok {
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, invalid("", "not a valid JSON object")
		}
	}
	in := &input{v: v, m: m}
	if err := in.checkNames(); err != nil {
		return nil, err
	}
	return in, nil
}

// checkNames refuses a given field the version does not have, naming it; of several,
// the first in alphabetical order, so the message does not depend on map order.
func (in *input) checkNames() error {
	bad, found := "", false
	for name, raw := range in.m {
		if in.v.inputSet[name] || empty(raw) {
			continue
		}
		// found, not bad == "": the empty key is a field the version does not have too.
		if !found || name < bad {
			bad, found = name, true
		}
	}
	if !found {
		return nil
	}
	if bad == "" {
		return invalid("", "the empty key \"\" is not an input of %s", in.v)
	}
	shown := shownKey(bad)
	n := in.v.node
	if since := n.firstVersionWith(func(x *Version) bool { return x.inputSet[bad] }); since != "" {
		return invalid(shown, "not an input of %s (it is one from %s on)", in.v, since)
	}
	for _, name := range in.v.inputs {
		if strings.EqualFold(name, bad) {
			return invalid(shown, "not an input of %s; did you mean %s?", in.v, name)
		}
	}
	return invalid(shown, "not an input of %s", in.v)
}

// shownKey is a key the version does not have as its message names it: clipped as every
// value a message repeats is, and quoted when it holds what would not read as written (a
// control or invisible character, a quote, a backslash).
func shownKey(key string) string {
	key = clip(key)
	if q := strconv.Quote(key); q[1:len(q)-1] != key {
		return q
	}
	return key
}

// empty reports whether a raw value means "not given".
func empty(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	switch string(raw) {
	case "", "null", `""`:
		return true
	}
	if len(raw) >= 2 && raw[0] == '[' {
		return len(bytes.TrimSpace(raw[1:len(raw)-1])) == 0
	}
	return false
}

// raw returns a given field's raw value, or nil.
func (in *input) raw(name string) json.RawMessage {
	r, ok := in.m[name]
	if !ok || empty(r) {
		return nil
	}
	return r
}

// str reads a string field; "" when not given. A JSON number is taken as the digits of
// its whole number (an address or ID is often a number in the flow); one given for a
// text (kindText) is taken as written. Fields of kindString lose surrounding spaces.
func (in *input) str(name string) (string, error) {
	r := in.raw(name)
	if r == nil {
		return "", nil
	}
	var s string
	switch c := r[0]; {
	case c == '"':
		var ok bool
		if s, ok = jsonscan.PlainString(r); !ok {
			if err := json.Unmarshal(r, &s); err != nil {
				return "", invalid(name, "not a valid JSON string")
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		s = string(r)
		if f := fieldByName[name]; f == nil || f.kind != kindText {
			// An address or ID: the digits of the whole number (a text keeps 1.5 as
			// written).
			var ok bool
			if s, ok = numberDigits(s); !ok {
				return "", invalid(name, "want a string: the number %s is not a whole number of at most %d digits", clip(string(r)), maxNumberDigits)
			}
		}
	default:
		return "", invalid(name, "want a string")
	}
	f := fieldByName[name]
	if f == nil || f.kind != kindText {
		s = strings.TrimSpace(s)
	}
	if f != nil && f.kind == kindPathID {
		if err := checkPathID(name, s); err != nil {
			return "", err
		}
	}
	return s, nil
}

// checkPathID refuses a value that Engage's URL path cannot carry as one ID (ENGAGE.md
// §2's malformed value; the rules are decisions.go's).
func checkPathID(name, s string) error {
	switch {
	case s == "." || s == "..":
		// Escaping leaves dots as they are: ".." would climb out of the conversation's
		// path to another of Engage's endpoints.
		return invalid(name, "%q is not an ID", s)
	case strings.ContainsAny(s, pathIDForbidden):
		return invalid(name, "%q is not an ID: an ID has none of %s", clip(s), pathIDForbiddenList)
	case strings.ContainsFunc(s, unicode.IsControl):
		return invalid(name, "%q is not an ID: an ID has no control characters", clip(s))
	}
	if n := utf8.RuneCountInString(s); n > MaxPathIDLength {
		return invalid(name, "%q is not an ID: %d characters, over the limit of %d", clip(s), n, MaxPathIDLength)
	}
	return nil
}

// maxNumberDigits bounds the digits a number given for a string field may have: far
// more than any phone number or ID, and "1e999999999" is not a million digits to build.
const maxNumberDigits = 64

// numberDigits writes a JSON number as the digits of the whole number it is: a flow
// whose numbers are floating point sends 15551234567 as 1.5551234567E10, and Engage must
// get 15551234567, not the exponent form. ok is false for a number with a fraction, or
// one over maxNumberDigits digits.
func numberDigits(num string) (string, bool) {
	if !strings.ContainsAny(num, ".eE") {
		return num, len(strings.TrimPrefix(num, "-")) <= maxNumberDigits // the usual case: as written
	}
	sign := ""
	if strings.HasPrefix(num, "-") {
		sign, num = "-", num[1:]
	}
	mant, exp := num, 0
	if i := strings.IndexAny(num, "eE"); i >= 0 {
		e, err := strconv.Atoi(strings.TrimPrefix(num[i+1:], "+"))
		if err != nil || e > 2*maxNumberDigits || e < -2*maxNumberDigits {
			return "", false
		}
		mant, exp = num[:i], e
	}
	digits := mant
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		digits = mant[:i] + mant[i+1:]
		exp -= len(mant) - i - 1
	}
	if exp < 0 {
		// The digits past the point must all be zeros.
		if -exp > len(digits) || strings.Trim(digits[len(digits)+exp:], "0") != "" {
			return "", false
		}
		digits = digits[:len(digits)+exp]
	} else {
		digits += strings.Repeat("0", exp)
	}
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return "0", true
	}
	if len(digits) > maxNumberDigits {
		return "", false
	}
	return sign + digits, true
}

// need reads a string field that must be given; why says for what ("for channel sms").
// Only spaces is not given: Engage would get an empty field.
func (in *input) need(name, why string) (string, error) {
	s, err := in.str(name)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(s) == "" {
		return "", required(name, why)
	}
	return s, nil
}

// given reports whether a field has a value: not absent, null, "", [] or only spaces.
// A string that does not decode counts as given, so that reading it reports why.
func (in *input) given(name string) bool {
	r := in.raw(name)
	if r == nil {
		return false
	}
	if r[0] == '"' {
		s, err := in.str(name)
		return err != nil || strings.TrimSpace(s) != ""
	}
	return true
}

// require checks that every named string field is given, in order; the channel must
// also be one the version has, so that a channel of another version is reported before
// the fields it would need.
func (in *input) require(names []string, why string) error {
	for _, name := range names {
		var err error
		if name == "channel" {
			_, err = in.channel()
		} else {
			_, err = in.need(name, why)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func required(name, why string) *InvalidInputError {
	if why == "" {
		return invalid(name, "required")
	}
	return invalid(name, "required %s", why)
}

// strs reads a list of strings: a JSON array of strings, or one string of
// comma-separated values. Empty entries are dropped.
func (in *input) strs(name string) ([]string, error) {
	r := in.raw(name)
	if r == nil {
		return nil, nil
	}
	var list []string
	switch r[0] {
	case '"':
		var s string
		if err := json.Unmarshal(r, &s); err != nil {
			return nil, invalid(name, "not a valid JSON string")
		}
		list = strings.Split(s, ",")
	case '[':
		if err := json.Unmarshal(r, &list); err != nil {
			return nil, invalid(name, "want a list of strings")
		}
	default:
		return nil, invalid(name, "want a list of strings or a comma-separated string")
	}
	out := list[:0]
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// object reads a JSON object or array, or a string that holds one (flows often carry
// JSON as text).
func (in *input) object(name string) (json.RawMessage, error) {
	r := in.raw(name)
	if r == nil {
		return nil, nil
	}
	if r[0] == '"' {
		var s string
		if err := json.Unmarshal(r, &s); err != nil {
			return nil, invalid(name, "not a valid JSON string")
		}
		r = json.RawMessage(strings.TrimSpace(s))
		if len(r) == 0 || (r[0] != '{' && r[0] != '[') || !json.Valid(r) {
			return nil, invalid(name, "want a JSON object or array (or a string holding one)")
		}
		return r, nil
	}
	if r[0] != '{' && r[0] != '[' {
		return nil, invalid(name, "want a JSON object or array (or a string holding one)")
	}
	return r, nil
}

// text reads a message text and checks its length.
func (in *input) text(name string) (string, error) {
	s, err := in.str(name)
	if err != nil {
		return "", err
	}
	if n := utf8.RuneCountInString(s); n > MaxTextLength {
		return "", invalid(name, "%d characters, over the limit of %d", n, MaxTextLength)
	}
	return s, nil
}

// timestamp reads an RFC 3339 time in UTC and returns it as Engage gets it.
func (in *input) timestamp(name, why string) (string, error) {
	s, err := in.need(name, why)
	if err != nil {
		return "", err
	}
	t, err := time.Parse(time.RFC3339Nano, rfc3339Upper(s))
	if err != nil {
		return "", invalid(name, "%q is not an RFC 3339 timestamp (e.g. 2026-03-01T12:00:00Z)", clip(s))
	}
	if _, off := t.Zone(); off != 0 {
		return "", invalid(name, "%q is not in UTC; end it in Z", clip(s))
	}
	return t.UTC().Format(time.RFC3339Nano), nil
}

// rfc3339Upper writes the "t" and "z" that RFC 3339 (§5.6) allows in lower case as
// the upper case letters time.Parse takes: 2026-03-01t12:00:00z is RFC 3339 too.
func rfc3339Upper(s string) string {
	if len(s) > 10 && s[10] == 't' {
		s = s[:10] + "T" + s[11:]
	}
	if n := len(s); n > 0 && s[n-1] == 'z' {
		s = s[:n-1] + "Z"
	}
	return s
}

type attachmentInput struct {
	MimeType string `json:"mimeType"`
	FileName string `json:"fileName"`
	FileURL  string `json:"fileUrl"`
}

// attachments reads the list of attachments; each needs a MIME type and an absolute
// http(s) URL.
func (in *input) attachments(name string) ([]engage.Attachment, error) {
	r := in.raw(name)
	if r == nil {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(r))
	dec.DisallowUnknownFields()
	var list []attachmentInput
	if err := dec.Decode(&list); err != nil {
		return nil, invalid(name, "want a list of {mimeType, fileName, fileUrl}")
	}
	out := make([]engage.Attachment, len(list))
	for i, a := range list {
		at := name + "[" + strconv.Itoa(i) + "]"
		if strings.TrimSpace(a.MimeType) == "" {
			return nil, required(at+".mimeType", "")
		}
		if !strings.Contains(a.MimeType, "/") {
			return nil, invalid(at+".mimeType", "%q is not a MIME type (type/subtype)", clip(a.MimeType))
		}
		if strings.TrimSpace(a.FileURL) == "" {
			return nil, required(at+".fileUrl", "")
		}
		u, err := url.Parse(strings.TrimSpace(a.FileURL))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, invalid(at+".fileUrl", "%q is not an absolute http(s) URL", clip(a.FileURL))
		}
		out[i] = engage.Attachment{MimeType: strings.TrimSpace(a.MimeType), FileName: a.FileName, FileURL: u.String()}
	}
	return out, nil
}

// channel reads the channel and checks that the version has it.
func (in *input) channel() (string, error) {
	s, err := in.need("channel", "")
	if err != nil {
		return "", err
	}
	wire, ok := channelWire[strings.ToLower(s)]
	if !ok {
		return "", invalid("channel", "unknown channel %q; %s takes %s", clip(s), in.v, strings.Join(in.v.channels, ", "))
	}
	if in.v.channelSet[wire] {
		return wire, nil
	}
	if since := in.v.node.firstVersionWith(func(x *Version) bool { return x.channelSet[wire] }); since != "" {
		return "", invalid("channel", "channel %s is not available in %s (it is from %s on); this version takes %s", wire, in.v, since, strings.Join(in.v.channels, ", "))
	}
	return "", invalid("channel", "channel %s is not available in %s; it takes %s", wire, in.v, strings.Join(in.v.channels, ", "))
}

// clip shortens a value quoted in a message.
func clip(s string) string { return clipN(s, 64) }

// clipN shortens s to at most max bytes, on a character boundary.
func clipN(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
