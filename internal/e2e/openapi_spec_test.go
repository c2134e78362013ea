package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// This file reads api/openapi.yaml and checks answers of the service against it; the
// conformance test itself is in openapi_conformance_test.go.

// oasSpec is api/openapi.yaml as JSON values (maps, slices, json.Number), with its
// operations and the schemas compiled from it.
type oasSpec struct {
	doc map[string]any
	ops []*oasOperation

	mu      sync.Mutex
	schemas map[string]*jsonschema.Schema // by where in the document, and open or closed
}

// oasOperation is one documented method of one path.
type oasOperation struct {
	id, method, path string
	match            *regexp.Regexp
	literals         int // literal path segments: a literal match wins over a parameter
	raw              map[string]any
}

func loadOpenAPI(t testing.TB) *oasSpec {
	t.Helper()
	raw, err := os.ReadFile("../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var y any
	if err := yaml.Unmarshal(raw, &y); err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	// Through JSON, so that the values are what the validator expects (json.Number,
	// map[string]any), as a JSON form of the document would give them.
	j, err := json.Marshal(y)
	if err != nil {
		t.Fatalf("api/openapi.yaml is not JSON-compatible: %v", err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	s := &oasSpec{doc: v.(map[string]any), schemas: map[string]*jsonschema.Schema{}}
	paths, _ := s.doc["paths"].(map[string]any)
	param := regexp.MustCompile(`^\{[^}/]+\}$`)
	for path, item := range paths {
		for method, op := range item.(map[string]any) {
			m := strings.ToUpper(method)
			if !slices.Contains([]string{"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"}, m) {
				continue
			}
			o := op.(map[string]any)
			id, _ := o["operationId"].(string)
			if id == "" {
				t.Fatalf("%s %s has no operationId", m, path)
			}
			literals := 0
			var segs []string
			for seg := range strings.SplitSeq(path, "/") {
				if param.MatchString(seg) {
					segs = append(segs, "[^/]+")
					continue
				}
				literals++
				segs = append(segs, regexp.QuoteMeta(seg))
			}
			pattern := "^" + strings.Join(segs, "/") + "$"
			s.ops = append(s.ops, &oasOperation{id: id, method: m, path: path, match: regexp.MustCompile(pattern), literals: literals, raw: o})
		}
	}
	slices.SortFunc(s.ops, func(a, b *oasOperation) int { return strings.Compare(a.id, b.id) })
	if len(s.ops) < 20 {
		t.Fatalf("api/openapi.yaml has only %d operations", len(s.ops))
	}
	return s
}

// operation finds the documented operation of a request, nil when none is documented.
func (s *oasSpec) operation(method, path string) *oasOperation {
	var best *oasOperation
	for _, o := range s.ops {
		if o.method == method && o.match.MatchString(path) && (best == nil || o.literals > best.literals) {
			best = o
		}
	}
	return best
}

// documentedMethods lists, as the service's Allow does, the methods documented for
// path (those of its most literal path), HEAD with GET.
func (s *oasSpec) documentedMethods(path string) string {
	literals := -1
	methods := map[string]bool{}
	for _, o := range s.ops {
		switch {
		case !o.match.MatchString(path) || o.literals < literals:
		case o.literals > literals:
			literals, methods = o.literals, map[string]bool{o.method: true}
		default:
			methods[o.method] = true
		}
	}
	methods["HEAD"] = methods["HEAD"] || methods["GET"]
	var out []string
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
		if methods[m] {
			out = append(out, m)
		}
	}
	return strings.Join(out, ", ")
}

// pointer returns what a local reference ("#/components/...") names.
func (s *oasSpec) pointer(ref string) (any, error) {
	frag, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, fmt.Errorf("only local references are supported: %q", ref)
	}
	var v any = s.doc
	for tok := range strings.SplitSeq(strings.TrimPrefix(frag, "/"), "/") {
		if tok == "" {
			continue
		}
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[tok]; !ok {
				return nil, fmt.Errorf("%s: no %q", ref, tok)
			}
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("%s: no item %q", ref, tok)
			}
			v = c[i]
		default:
			return nil, fmt.Errorf("%s: nothing in which to find %q", ref, tok)
		}
	}
	return v, nil
}

// object follows the references of a response, header, parameter or request body object
// (their siblings, description or summary, only annotate).
func (s *oasSpec) object(v any) (map[string]any, error) {
	for range 16 {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("not an object: %v", v)
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m, nil
		}
		var err error
		if v, err = s.pointer(ref); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("a reference loop")
}

// inline returns a copy of a schema with every reference replaced by what it names
// (api/openapi.yaml has no recursive schema). When closed, every object schema that
// names its properties and leaves additional ones unsaid gets unevaluatedProperties:
// false, except where it is one branch of a composition (allOf, anyOf, oneOf, if, then,
// else, not): there the schema that composes them is closed instead, so a property that
// one branch declares is declared for the whole. A closed schema refuses a property that
// the description does not name anywhere.
func (s *oasSpec) inline(v any, closed, branch bool, depth int) (any, error) {
	if depth > 64 {
		return nil, fmt.Errorf("references nest over 64 deep: a recursive schema?")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return v, nil
	}
	out := map[string]any{}
	if ref, ok := m["$ref"].(string); ok {
		target, err := s.pointer(ref)
		if err != nil {
			return nil, err
		}
		in, err := s.inline(target, closed, branch, depth+1)
		if err != nil {
			return nil, err
		}
		inm, ok := in.(map[string]any)
		if !ok {
			return in, nil
		}
		maps.Copy(out, inm)
		for k, v := range m {
			if k == "$ref" {
				continue
			}
			if _, schemaKeyword := oasSubschemaKeywords[k]; schemaKeyword {
				return nil, fmt.Errorf("%s: a $ref with sibling %q is not supported here", ref, k)
			}
			if _, there := out[k]; !there {
				out[k] = v
			}
		}
		return out, nil
	}
	var err error
	sub := func(v any, branch bool) any {
		if err != nil {
			return nil
		}
		var r any
		r, err = s.inline(v, closed, branch, depth+1)
		return r
	}
	for k, v := range m {
		kind, ok := oasSubschemaKeywords[k]
		switch {
		case !ok:
			out[k] = v
		case kind == subMap:
			mm, _ := v.(map[string]any)
			cp := map[string]any{}
			for name, sch := range mm {
				cp[name] = sub(sch, false)
			}
			out[k] = cp
		case kind == subList || kind == subBranches:
			list, _ := v.([]any)
			cp := make([]any, len(list))
			for i, sch := range list {
				cp[i] = sub(sch, kind == subBranches)
			}
			out[k] = cp
		case kind == subBranch:
			out[k] = sub(v, true)
		default:
			out[k] = sub(v, false)
		}
	}
	if err != nil {
		return nil, err
	}
	_, props := m["properties"]
	_, all := m["allOf"]
	_, any_ := m["anyOf"]
	_, one := m["oneOf"]
	_, additional := m["additionalProperties"]
	_, unevaluated := m["unevaluatedProperties"]
	if closed && !branch && (props || all || any_ || one) && !additional && !unevaluated {
		out["unevaluatedProperties"] = false
	}
	return out, nil
}

const (
	subOne      = iota // one subschema
	subMap             // a map of subschemas
	subList            // a list of subschemas
	subBranches        // a list of subschemas composed into the parent
	subBranch          // one subschema composed into the parent
)

// oasSubschemaKeywords are the JSON Schema 2020-12 keywords that hold subschemas.
var oasSubschemaKeywords = map[string]int{
	"properties": subMap, "patternProperties": subMap, "$defs": subMap, "dependentSchemas": subMap,
	"items": subOne, "additionalProperties": subOne, "unevaluatedProperties": subOne, "contains": subOne,
	"propertyNames": subOne, "unevaluatedItems": subOne, "contentSchema": subOne,
	"prefixItems": subList,
	"allOf":       subBranches, "anyOf": subBranches, "oneOf": subBranches,
	"if": subBranch, "then": subBranch, "else": subBranch, "not": subBranch,
}

// compile compiles the schema at key (a description of where it is), open as written or
// closed (see inline).
func (s *oasSpec) compile(key string, schema any, closed bool) (*jsonschema.Schema, error) {
	cacheKey := fmt.Sprintf("%s closed=%t", key, closed)
	s.mu.Lock()
	defer s.mu.Unlock()
	if sch, ok := s.schemas[cacheKey]; ok {
		return sch, nil
	}
	in, err := s.inline(schema, closed, false, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", key, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020) // OpenAPI 3.1's schemas are JSON Schema 2020-12
	c.AssertFormat()                     // uuid, date-time: as strict as a client may be
	loc := fmt.Sprintf("mem:///schema/%d.json", len(s.schemas))
	if err := c.AddResource(loc, in); err != nil {
		return nil, fmt.Errorf("%s: %v", key, err)
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", key, err)
	}
	s.schemas[cacheKey] = sch
	return sch, nil
}

// statuses lists an operation's documented response keys ("200", "4XX", "default").
func (o *oasOperation) statuses() []string {
	rs, _ := o.raw["responses"].(map[string]any)
	return slices.Sorted(maps.Keys(rs))
}

// responseKey is the documented response key that covers status, "" when none does.
func (o *oasOperation) responseKey(status int) string {
	rs, _ := o.raw["responses"].(map[string]any)
	for _, k := range []string{strconv.Itoa(status), fmt.Sprintf("%dXX", status/100), "default"} {
		if _, ok := rs[k]; ok {
			return k
		}
	}
	return ""
}

// oasChecker checks every answer of the service a client gets through its transport
// against the description, and counts which documented answers were seen.
type oasChecker struct {
	t    testing.TB
	spec *oasSpec
	host string // the service's host:port; answers from anywhere else are not checked

	mu    sync.Mutex
	seen  map[string]map[string]int // operation ID -> response key -> answers
	codes map[string]bool           // error codes of execution answers seen
}

// unrouted counts answers to requests that no operation describes (unknown paths,
// undocumented methods): they must be the documented Problem response.
const unrouted = "(unrouted)"

func newOASChecker(t testing.TB, spec *oasSpec, serviceURL string) *oasChecker {
	u, err := url.Parse(serviceURL)
	if err != nil {
		t.Fatal(err)
	}
	return &oasChecker{t: t, spec: spec, host: u.Host, seen: map[string]map[string]int{}, codes: map[string]bool{}}
}

// client returns c with its transport wrapped so that every answer is checked.
func (c *oasChecker) client(hc *http.Client) *http.Client {
	cp := *hc
	cp.Transport = oasTransport{base: hc.Transport, c: c}
	return &cp
}

type oasTransport struct {
	base http.RoundTripper
	c    *oasChecker
}

func (tr oasTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil && req.GetBody != nil {
		if rc, err := req.GetBody(); err == nil {
			reqBody, _ = io.ReadAll(rc)
			rc.Close()
		}
	}
	resp, err := tr.base.RoundTrip(req)
	if err != nil || req.URL.Host != tr.c.host {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	for _, problem := range tr.c.check(req, reqBody, resp, body) {
		tr.c.t.Errorf("%s %s -> %d: %s", req.Method, req.URL.Path, resp.StatusCode, problem)
	}
	return resp, nil
}

// check returns what is wrong with one answer, per the description.
func (c *oasChecker) check(req *http.Request, reqBody []byte, resp *http.Response, body []byte) []string {
	s := c.spec
	op := s.operation(req.Method, req.URL.Path)
	var response any
	var where, opID, key string
	if op == nil {
		// No operation: the router's 404 or 405, the description's Problem response (a
		// Page under the admin pages and the login callback).
		opID, key = unrouted, strconv.Itoa(resp.StatusCode)
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			return []string{"no operation documents this request, and the answer is neither 404 nor 405"}
		}
		where = "#/components/responses/Problem"
		if p := req.URL.Path; strings.HasPrefix(p, "/admin") || strings.HasPrefix(p, "/oauth") {
			where = "#/components/responses/Page" // read by people (docs/problems.md)
		}
		response = map[string]any{"$ref": where}
	} else {
		opID, key = op.id, op.responseKey(resp.StatusCode)
		if key == "" {
			return []string{fmt.Sprintf("status %d is not documented for %s (documented: %v)", resp.StatusCode, op.id, op.statuses())}
		}
		response = op.raw["responses"].(map[string]any)[key]
		where = op.id + " " + key
	}
	c.mu.Lock()
	if c.seen[opID] == nil {
		c.seen[opID] = map[string]int{}
	}
	c.seen[opID][key]++
	c.mu.Unlock()

	r, err := s.object(response)
	if err != nil {
		return []string{where + ": " + err.Error()}
	}
	var problems []string
	// Every answer carries nosniff (info.description).
	if got := resp.Header.Values("X-Content-Type-Options"); len(got) != 1 || got[0] != "nosniff" {
		problems = append(problems, fmt.Sprintf("X-Content-Type-Options %q, want nosniff", got))
	}
	// A 405 names in Allow the methods the description documents for the path, HEAD
	// with GET (RFC 9110 §15.5.6): neither an empty Allow nor one that drifted from it.
	if resp.StatusCode == http.StatusMethodNotAllowed {
		if want := s.documentedMethods(req.URL.Path); resp.Header.Get("Allow") != want {
			problems = append(problems, fmt.Sprintf("Allow %q, but the description documents %q here", resp.Header.Get("Allow"), want))
		}
	}
	// The caller's plain request ID is the answer's (components/parameters/RequestId).
	if id := req.Header.Get("X-Request-Id"); id != "" && oasPlainRequestID.MatchString(id) && resp.Header.Get("X-Request-Id") != id {
		problems = append(problems, fmt.Sprintf("X-Request-Id %q, not the request's own %q", resp.Header.Get("X-Request-Id"), id))
	}
	// Headers: the required ones are there; every documented one there has a value
	// its schema allows.
	headers, _ := r["headers"].(map[string]any)
	for name, h := range headers {
		if strings.EqualFold(name, "Content-Type") {
			continue // OpenAPI ignores it: the content's media types say it
		}
		ho, err := s.object(h)
		if err != nil {
			problems = append(problems, fmt.Sprintf("header %s: %v", name, err))
			continue
		}
		values := resp.Header.Values(name)
		if len(values) == 0 {
			if req, _ := ho["required"].(bool); req {
				problems = append(problems, "no "+name+" header, which the description requires")
			}
			continue
		}
		if hs, ok := ho["schema"]; ok {
			sch, err := s.compile(where+" header "+name, hs, false)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			for _, v := range values {
				if err := sch.Validate(v); err != nil {
					problems = append(problems, fmt.Sprintf("header %s: %q is not what the description allows: %v", name, v, err))
				}
			}
		}
	}

	// Content: a documented media type, and a JSON body its schema validates.
	content, _ := r["content"].(map[string]any)
	ct := resp.Header.Get("Content-Type")
	if len(content) == 0 {
		if len(body) > 0 || ct != "" {
			problems = append(problems, fmt.Sprintf("a body (%s, %d bytes) where the description documents none: %.200q", ct, len(body), body))
		}
		return problems
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return append(problems, fmt.Sprintf("Content-Type %q: %v (documented: %v)", ct, err, slices.Sorted(maps.Keys(content))))
	}
	media, mtKey := oasMediaType(content, mt)
	if media == nil {
		return append(problems, fmt.Sprintf("Content-Type %s is not documented (documented: %v)", mt, slices.Sorted(maps.Keys(content))))
	}
	schema, hasSchema := media["schema"]
	if !hasSchema || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return problems // HTML pages and the metrics: status and media type only
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return append(problems, fmt.Sprintf("the %s body is not JSON: %v", mt, err))
	}
	if err := c.validate(where+" "+mtKey, schema, v); err != "" {
		problems = append(problems, err)
	}
	if mt == "application/problem+json" {
		problems = append(problems, oasProblemConsistent(v, resp)...)
	}
	if opID == "execute" && resp.StatusCode == http.StatusOK {
		if e, ok := v.(map[string]any)["error"].(map[string]any); ok {
			code, _ := e["code"].(string)
			c.mu.Lock()
			c.codes[code] = true
			c.mu.Unlock()
		}
	}

	// A request the service accepted is one the description accepts: its request
	// schema is not stricter than the service.
	if op != nil && resp.StatusCode/100 == 2 && len(bytes.TrimSpace(reqBody)) > 0 {
		if rb, ok := op.raw["requestBody"]; ok {
			rbo, err := s.object(rb)
			if err != nil {
				return append(problems, err.Error())
			}
			rct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
			rcontent, _ := rbo["content"].(map[string]any)
			if rmedia, _ := oasMediaType(rcontent, rct); rmedia == nil {
				problems = append(problems, fmt.Sprintf("the request's Content-Type %s, which the service accepted, is not documented", rct))
			} else if rs, ok := rmedia["schema"]; ok && (rct == "application/json" || strings.HasSuffix(rct, "+json")) {
				rv, err := jsonschema.UnmarshalJSON(bytes.NewReader(reqBody))
				if err != nil {
					problems = append(problems, fmt.Sprintf("the request body the service accepted is not JSON: %v", err))
				} else if err := c.validateOpen(op.id+" request "+rct, rs, rv); err != "" {
					problems = append(problems, "the service accepted a request body the description refuses: "+err)
				}
			}
		}
	}
	return problems
}

// validate validates v against schema as written, then closed: a property the
// description does not name anywhere is drift too.
func (c *oasChecker) validate(where string, schema, v any) string {
	if msg := c.validateOpen(where, schema, v); msg != "" {
		return msg
	}
	sch, err := c.spec.compile(where, schema, true)
	if err != nil {
		return err.Error()
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Sprintf("the body has a property that %s does not document: %v", where, err)
	}
	return ""
}

func (c *oasChecker) validateOpen(where string, schema, v any) string {
	sch, err := c.spec.compile(where, schema, false)
	if err != nil {
		return err.Error()
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Sprintf("the body does not validate against %s: %v", where, err)
	}
	return ""
}

// oasMediaType finds the content entry for media type mt: exact, then type/*, then */*.
func oasMediaType(content map[string]any, mt string) (map[string]any, string) {
	major, _, _ := strings.Cut(mt, "/")
	for _, k := range []string{mt, major + "/*", "*/*"} {
		for key, m := range content {
			if kt, _, err := mime.ParseMediaType(key); err == nil && strings.EqualFold(kt, k) {
				mm, _ := m.(map[string]any)
				if mm == nil {
					mm = map[string]any{}
				}
				return mm, key
			}
		}
	}
	return nil, ""
}

// oasPlainRequestID is the pattern of components/parameters/RequestId.
var oasPlainRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// oasProblemConsistent checks what Problem's descriptions say of its members: type is
// urn:noderuntime:problem:<code>, status the answer's, requestId the X-Request-Id.
func oasProblemConsistent(v any, resp *http.Response) []string {
	p, ok := v.(map[string]any)
	if !ok {
		return nil // the schema check has said so
	}
	var problems []string
	code, _ := p["code"].(string)
	if typ, _ := p["type"].(string); typ != "urn:noderuntime:problem:"+code {
		problems = append(problems, fmt.Sprintf("problem type %q for code %q", typ, code))
	}
	if st, ok := p["status"].(json.Number); !ok || st.String() != strconv.Itoa(resp.StatusCode) {
		problems = append(problems, fmt.Sprintf("problem status %v in a %d answer", p["status"], resp.StatusCode))
	}
	if id, ok := p["requestId"].(string); ok && id != resp.Header.Get("X-Request-Id") {
		problems = append(problems, fmt.Sprintf("problem requestId %q, X-Request-Id %q", id, resp.Header.Get("X-Request-Id")))
	}
	return problems
}
