package nodes

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/outcomes"
)

var update = flag.Bool("update", false, "rewrite testdata/catalog.golden.json and docs/nodes.md from the registry")

const (
	goldenPath = "testdata/catalog.golden.json"
	docsPath   = "../../docs/nodes.md"
)

func checkGenerated(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/nodes -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("%s differs from the registry at line %d:\n got %s\nwant %s\n(if the change is intended: go test ./internal/nodes -run %s -update)", path, i+1, gl[i], wl[i], t.Name())
			}
		}
		t.Fatalf("%s differs from the registry in length (%d vs %d lines); go test ./internal/nodes -run %s -update", path, len(gl), len(wl), t.Name())
	}
}

// TestCatalogGolden pins the catalog JSON that GET /v1/nodes serves: any change to a
// node's inputs, outputs or outcomes shows up in review as a diff of the golden file.
func TestCatalogGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := json.Indent(&buf, NewRegistry().CatalogJSON(), "", "  "); err != nil {
		t.Fatal(err)
	}
	checkGenerated(t, goldenPath, buf.Bytes())
}

// TestDocsNodesMdIsTheCatalog keeps docs/nodes.md generated from the registry.
func TestDocsNodesMdIsTheCatalog(t *testing.T) {
	checkGenerated(t, docsPath, markdown(NewRegistry()))
}

// TestEveryOutcomeTheCodeCanReturnIsDeclared walks every way a node's code picks an
// outcome (its success outcomes, the status table, each failure column, the standard
// outcomes) and checks the version declares it; the HTTP tests check the same from the
// answers they get.
func TestEveryOutcomeTheCodeCanReturnIsDeclared(t *testing.T) {
	t.Parallel()
	for _, v := range NewRegistry().Versions() {
		def := v.node.def
		can := append([]outcomes.Outcome{def.rejected, def.failed}, def.success...)
		can = append(can, outcomes.OnTimeout, outcomes.OnAuthorizationFailure, outcomes.OnError, outcomes.OnInvalidData)
		if def.succeed != nil && def.id == "search-conversation" {
			for _, o := range searchStatuses {
				can = append(can, o)
			}
			can = append(can, outcomes.NoConversationFound, outcomes.OnInvalidChoice)
		}
		for _, col := range []column{columnTimeout, columnAuthorization, columnRejected, columnFailed, columnError} {
			can = append(can, outcomeOf(def, col))
		}
		for _, o := range can {
			if !v.Declares(o) {
				t.Errorf("%s can answer %s but does not declare it", v, o)
			}
		}
		// And the catalog declares nothing the code cannot answer, but onInvalidChoice,
		// which every node has (ENGAGE.md §2).
		for _, o := range v.Outcomes() {
			if !slices.Contains(can, o) && o != outcomes.OnInvalidChoice {
				t.Errorf("%s declares %s, which its code never answers", v, o)
			}
		}
	}
}

// outcomeOf is the outcome of a column for a node, as engageFailure picks it.
func outcomeOf(def *definition, c column) outcomes.Outcome {
	switch c {
	case columnTimeout:
		return outcomes.OnTimeout
	case columnAuthorization:
		return outcomes.OnAuthorizationFailure
	case columnRejected:
		return def.rejected
	case columnFailed:
		return def.failed
	}
	return outcomes.OnError
}

var docIntro = `# Node catalog

<!-- Generated from internal/nodes by ` + "`go test ./internal/nodes -run TestDocsNodesMdIsTheCatalog -update`" + `; do not edit. -->

The nodes noderuntime runs, each version with its inputs, output variables and outcomes.
It is the same catalog that ` + "`GET /v1/nodes`" + ` serves as JSON (with each version's input
JSON Schema), generated from the definitions the runtime executes; the behaviour is
specified in ENGAGE.md.

Run a version with ` + "`POST /v1/executions`" + ` ` + "`{\"node\", \"version\", \"authorizationId\", \"input\", \"timeoutMs\"?, \"context\"?}`" + `
(` + "`context`" + `: ` + "`{flowId, nodeId, transactionId}`" + `, all optional, only logged; any other key is 400).
The answer is 200 with ` + "`{outcome, output, error?, executionId, durationMs}`" + ` for every
execution that names a node version; ` + "`version`" + ` may be ` + "`1.3`" + ` or ` + "`v1.3`" + `.

- ` + "`output`" + ` always holds exactly the version's output variables; those the execution did
  not produce have their zero value (` + "`\"\"`, `false`, `0`" + `).
- Failure outcomes carry ` + "`error: {code, message}`" + `, and when Engage answered also
  ` + "`engageStatus`, `engageCode`, `engageDescription`" + `. Codes: ` + "`invalid_input`, `authorization_not_found`,\n  `authorization_pending`, `authorization_needs_reauthorization`, `engage_unauthorized`,\n  `timeout`, `engage_rejected`, `engage_rate_limited`, `engage_unavailable`,\n  `engage_bad_response`, `engage_circuit_open`, `unknown_status`, `token_unavailable`,\n  `internal`, `canceled`" + `.
- Input: empty strings, ` + "`null` and `[]`" + ` count as not given, and so does a string of only spaces where a value is required; where a string is expected a
  number is taken as the digits of its whole number (` + "`1.5551234567E10`" + ` as ` + "`15551234567`" + `;
  one with a fraction is ` + "`onInvalidData`" + `), one given for a text (a message text, subject or body) as written; ` + "`channel`" + ` takes the wire value or the display name in
  any case (` + "`abc`" + ` is an alias of ` + "`amb`" + `); timestamps are RFC 3339 in UTC; a field the
  version does not have is ` + "`onInvalidData`" + `, naming it. The input JSON Schema's ` + "`enum`" + `s
  list the wire spellings (lower case), those an editor should offer; the runtime also
  takes display names and ` + "`direction` and `messageType`" + ` in any case, which a strict
  validator of the schema refuses. Lists of addresses may be one
  comma-separated string; rich objects may be JSON text. An ID that Engage's URL path
  carries (` + "`conversationId`, `participant`" + `) is at most ` + strconv.Itoa(MaxPathIDLength) + ` characters, not ` + "`.` or `..`" + `, and
  holds none of ` + "`/ \\ ? # % ;`" + ` nor a control character: escaping would keep them in their
  path segment, but a proxy that decodes the path would give them their meaning back.
- A 401 from Engage refreshes the token and repeats the call once, for every node. Search
  is repeated once, inside the deadline, after a connection failure or a 502/503/504;
  nothing that may have changed something in Engage is ever repeated.
- ` + "`Idempotency-Key`" + ` (header, per tenant): the same key with the same body within 24 h
  answers the first answer (header ` + "`Idempotent-Replayed: true`" + `) without running the node
  again; another body (compared byte for byte, so a retry must send the same bytes) is 422; a request while the first still runs waits for its answer
  (for its own deadline plus 5 s at most, then 409).
  A failure that certainly changed nothing in Engage (` + "`onInvalidData`" + `, an authorization or
  token that cannot be used, the breaker open, Engage refusing the token or rate limiting)
  is not kept: a retry with the key runs the node again.

The choices ENGAGE.md leaves open ("our decision") are all in ` + "`internal/nodes/decisions.go`" + `.
`

// markdown renders the catalog for people.
func markdown(r *Registry) []byte {
	var b strings.Builder
	b.WriteString(docIntro)
	for _, n := range r.nodes {
		def := n.def
		fmt.Fprintf(&b, "\n## %s (`%s`)\n\n", def.displayName, def.id)
		fmt.Fprintf(&b, "Method: %s", def.method)
		if len(def.methodAliases) > 0 {
			fmt.Fprintf(&b, " (also: %s)", strings.Join(def.methodAliases, ", "))
		}
		fmt.Fprintf(&b, ". Versions: %s (recommended: %s).\n\n", strings.Join(n.VersionNumbers(), ", "), n.Recommended().number)
		b.WriteString("| outcome | aliases | kind | when |\n|---|---|---|---|\n")
		for _, o := range n.Recommended().buildCatalog().Outcomes {
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", o.Name, codeList(o.Aliases), o.Kind, o.Description)
		}
		var prev *Version
		for _, v := range n.versions {
			fmt.Fprintf(&b, "\n### %s %s\n\n", def.displayName, v.number)
			if prev != nil {
				fmt.Fprintf(&b, "Adds to %s: %s.\n\n", prev.number, versionDelta(prev, v))
			}
			if len(v.channels) > 0 {
				fmt.Fprintf(&b, "Channels: %s.\n\n", codeList(v.channels))
			}
			when := requiredWhen(v)
			b.WriteString("| input | required | description |\n|---|---|---|\n")
			for _, name := range v.inputs {
				fmt.Fprintf(&b, "| `%s` | %s | %s |\n", name, when[name], v.fieldDescription(fieldByName[name]))
			}
			if v.messages != 0 {
				b.WriteString("\n| channel | direction | message types |\n|---|---|---|\n")
				for _, ch := range v.channels {
					for _, d := range directionOrder {
						if types := v.msgTypes[msgKey{channel: ch, direction: d}]; len(types) > 0 {
							fmt.Fprintf(&b, "| %s | %s | %s |\n", ch, d, codeList(types))
						}
					}
				}
			}
			b.WriteString("\n| output | type | description |\n|---|---|---|\n")
			for _, o := range v.buildCatalog().Outputs {
				fmt.Fprintf(&b, "| `%s` | %s | %s |\n", o.Name, o.Type, o.Description)
			}
			prev = v
		}
	}
	return []byte(b.String())
}

func codeList(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return "`" + strings.Join(names, "`, `") + "`"
}

// versionDelta says in words what v adds to prev.
func versionDelta(prev, v *Version) string {
	var parts []string
	if ch := without(v.channels, prev.channels); len(ch) > 0 {
		parts = append(parts, "channels "+codeList(ch))
	}
	var combos []string
	for _, ch := range v.channels {
		for _, d := range directionOrder {
			for _, typ := range v.msgTypes[msgKey{channel: ch, direction: d}] {
				if !prev.msgAllowed[msgKey{ch, d, typ}] {
					combos = append(combos, fmt.Sprintf("%s %s `%s`", ch, d, typ))
				}
			}
		}
	}
	if len(combos) > 0 {
		parts = append(parts, "message types "+strings.Join(combos, ", "))
	}
	if in := without(v.inputs, prev.inputs); len(in) > 0 {
		parts = append(parts, "inputs "+codeList(in))
	}
	if out := without(v.outputs, prev.outputs); len(out) > 0 {
		parts = append(parts, "outputs "+codeList(out))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, "; ")
}

func without(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// requiredWhen reads from the version's JSON Schema when each input is required.
func requiredWhen(v *Version) map[string]string {
	s := v.buildCatalog().InputSchema
	conds := map[string][]string{}
	always := map[string]bool{}
	for _, f := range s["required"].([]string) {
		always[f] = true
	}
	byChannel := map[string][]string{}
	allOf, _ := s["allOf"].([]any)
	for _, c := range allOf {
		m := c.(map[string]any)
		ifProps := m["if"].(map[string]any)["properties"].(map[string]any)
		then := m["then"].(map[string]any)
		req, _ := then["required"].([]string)
		if p, ok := ifProps["messageType"].(map[string]any); ok {
			typ := p["const"].(string)
			for _, f := range req {
				conds[f] = append(conds[f], "`"+typ+"`")
			}
			var alts []string
			for _, alt := range asAnyList(then["anyOf"]) {
				alts = append(alts, alt.(map[string]any)["required"].([]string)[0])
			}
			for _, f := range alts {
				conds[f] = append(conds[f], "`"+typ+"` (one of "+codeList(alts)+")")
			}
			continue
		}
		if p, ok := ifProps["channel"].(map[string]any); ok && len(ifProps) == 1 {
			for _, f := range req {
				byChannel[f] = append(byChannel[f], p["const"].(string))
			}
		}
	}
	out := map[string]string{}
	for _, name := range v.inputs {
		switch {
		case always[name] || (len(byChannel[name]) == len(v.channels) && len(v.channels) > 0):
			out[name] = "yes"
		case len(byChannel[name]) > 0:
			out[name] = "on " + strings.Join(byChannel[name], ", ")
		case len(conds[name]) > 0:
			out[name] = "for " + strings.Join(conds[name], ", ")
		default:
			out[name] = "no"
		}
	}
	return out
}

func asAnyList(v any) []any {
	l, _ := v.([]any)
	return l
}

// A 401 from Engage earns one refresh; when the token endpoint then fails, the edge is
// onError (token_unavailable), not onAuthorizationFailure: the catalog's onError says so,
// or a flow designer reading it cannot tell where that execution goes.
func TestTheCatalogSaysARefreshFailingAfterA401IsOnError(t *testing.T) {
	t.Parallel()
	for _, v := range NewRegistry().Versions() {
		for _, o := range v.buildCatalog().Outcomes {
			if o.Name == string(outcomes.OnError) && !strings.Contains(o.Description, "token endpoint failed while the stored token had expired or just after Engage rejected it (a 401") {
				t.Errorf("%s: onError does not name the token endpoint failing after a 401: %s", v, o.Description)
			}
		}
	}
}

// Re-open takes a closed conversation: the catalog's ConversationReopenFailed must name a
// conversation that is not closed as its refusal, never "conversation closed", the
// generic example of the other nodes' refusals. Create has no conversation yet: its
// refusal names neither an unknown nor a closed one, nor a conflict (Engage's model
// refuses a create only as an invalid request), and its Failure names the success
// without the new conversation's ID that it takes as a bad answer. Each other node's
// examples are the refusals the simulator's model of Engage gives it: Append's an
// unknown conversation (404), a closed one (409) and an invalid request (400).
func TestTheCatalogsRefusalExamplesFitTheirNode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		node    string
		outcome outcomes.Outcome
		has     string
		hasNot  []string
	}{
		{"reopen-conversation", outcomes.ConversationReopenFailed, "not closed", []string{"conversation closed"}},
		// An alias ID is written on a closed conversation too, and an agent removed
		// from one (docs/engage.md's model): neither refusal names a closed conversation.
		{"update-conversation", outcomes.OnConversationUpdatedFailure, "unknown conversation", []string{"closed"}},
		{"remove-participant", outcomes.OnRemoveParticipantFailure, "not in it", []string{"closed"}},
		{"add-participant", outcomes.OnAddParticipantFailure, "already in it", nil},
		{"close-conversation", outcomes.OnCloseConversationFailure, "already closed", nil},
		{"create-conversation", outcomes.OnConversationFailed, "invalid request", []string{"unknown conversation", "conversation closed", "conflict"}},
		{"create-conversation", outcomes.Failure, "a success without the new conversation's ID", nil},
		{"append-message", outcomes.OnAppendMessageFailure, "unknown conversation, conversation closed, invalid request", nil},
	} {
		n, _ := NewRegistry().Node(tc.node)
		found := false
		for _, o := range n.Recommended().buildCatalog().Outcomes {
			if o.Name != string(tc.outcome) {
				continue
			}
			found = true
			if !strings.Contains(o.Description, tc.has) {
				t.Errorf("%s %s does not name %q: %s", tc.node, o.Name, tc.has, o.Description)
			}
			for _, not := range tc.hasNot {
				if strings.Contains(o.Description, not) {
					t.Errorf("%s %s names %q: %s", tc.node, o.Name, not, o.Description)
				}
			}
		}
		if !found {
			t.Errorf("no %s in the catalog of %s", tc.outcome, tc.node)
		}
	}
}

// Each output variable's description speaks of its own node: Create's conversationId is
// the conversation it made, Search's the one it found, neither the other's; and every transaction ID
// says it is empty on every failure and when Engage's answer carries none (a success
// all the same: TestAChangingNodesSuccessWithoutATidIsASuccessWithAnEmptyTransactionID).
func TestTheCatalogsOutputsSpeakOfTheirNode(t *testing.T) {
	t.Parallel()
	for _, v := range NewRegistry().Versions() {
		for _, o := range v.buildCatalog().Outputs {
			switch {
			case v.node.def.id == "create-conversation" && o.Name == "conversationId":
				if !strings.Contains(o.Description, "Engage created") || strings.Contains(o.Description, "Search") {
					t.Errorf("%s %s: %s", v, o.Name, o.Description)
				}
			case o.Name == "conversationId":
				if !strings.Contains(o.Description, "found") || strings.Contains(o.Description, "Create") {
					t.Errorf("%s %s: %s", v, o.Name, o.Description)
				}
			case o.Name == "TransId" || o.Name == "transID":
				if !strings.Contains(o.Description, "empty on every failure, and when Engage's answer to a change it made carries none") {
					t.Errorf("%s %s: %s", v, o.Name, o.Description)
				}
			}
		}
	}
}

func TestSortedOutputsAreEveryOutputInByteOrder(t *testing.T) {
	for _, n := range NewRegistry().Nodes() {
		for _, v := range n.Versions() {
			got, want := v.SortedOutputs(), slices.Sorted(slices.Values(v.Outputs()))
			if !slices.Equal(got, want) {
				t.Errorf("%s: SortedOutputs %q, want %q", v, got, want)
			}
		}
	}
}

// Declares is what the fuzz and catalog tests check every answer against: it must say
// yes to exactly the outcomes a version's catalog entry lists, and no to any other
// node's edge.
func TestAVersionDeclaresExactlyTheOutcomesOfItsCatalogEntry(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	all := map[outcomes.Outcome]bool{outcomes.OnFailure: true, outcomes.Failure: true, "Success": true, "onauthorizationfail": true}
	for _, v := range r.Versions() {
		for _, o := range v.Outcomes() {
			all[o] = true
		}
	}
	for _, v := range r.Versions() {
		listed := map[outcomes.Outcome]bool{}
		for _, o := range v.Outcomes() {
			listed[o] = true
		}
		for o := range all {
			if got := v.Declares(o); got != listed[o] {
				t.Errorf("%s: Declares(%s) = %v, want %v", v, o, got, listed[o])
			}
		}
	}
}

// The nodes that take IDs only have no channel, message type, timestamp or text: their
// onInvalidData names what can be wrong with their input, the ID rules of decisions.go,
// not the generic examples.
func TestOnInvalidDataOfANodeWithoutAChannelNamesTheIDRules(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"update-conversation", "add-participant", "remove-participant", "close-conversation", "reopen-conversation"} {
		n, _ := NewRegistry().Node(id)
		for _, o := range n.Recommended().buildCatalog().Outcomes {
			if o.Name != string(outcomes.OnInvalidData) {
				continue
			}
			for _, not := range []string{"channel", "timestamp", "text too long"} {
				if strings.Contains(o.Description, not) {
					t.Errorf("%s: onInvalidData names %q: %s", id, not, o.Description)
				}
			}
			for _, has := range []string{"/ \\ ? # % ;", "control character", "256 characters", "Engage is not called"} {
				if !strings.Contains(o.Description, has) {
					t.Errorf("%s: onInvalidData does not name %q: %s", id, has, o.Description)
				}
			}
		}
	}
}

// Only Search takes onInvalidChoice (a status no other outcome covers); every other
// node's catalog says it never does, rather than promising a value to choose by that
// its answer does not have (TestEveryKindOfEngageAnswerLeadsAChangingNodeToItsEdge runs
// every kind of answer through them).
func TestOnInvalidChoiceSaysItIsNotTakenByTheNodesThatHaveNoChoice(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	for _, id := range reg.NodeIDs() {
		n, _ := reg.Node(id)
		for _, v := range n.Versions() {
			for _, o := range v.buildCatalog().Outcomes {
				if o.Name != string(outcomes.OnInvalidChoice) {
					continue
				}
				if never := strings.HasPrefix(o.Description, "Not taken by this node"); never == (id == "search-conversation") {
					t.Errorf("%s: onInvalidChoice %q", v, o.Description)
				}
			}
		}
	}
}

// Search's catalog says exactly when it takes onInvalidChoice: it names every status
// another outcome covers (decisions.go) and the error's code, so a flow designer knows
// which statuses end there without reading the code.
func TestSearchsCatalogSaysWhichStatusesAreOnInvalidChoice(t *testing.T) {
	t.Parallel()
	n, _ := NewRegistry().Node("search-conversation")
	for _, v := range n.Versions() {
		var desc string
		for _, o := range v.buildCatalog().Outcomes {
			if o.Name == string(outcomes.OnInvalidChoice) {
				desc = o.Description
			}
		}
		words := strings.FieldsFunc(desc, func(r rune) bool { return strings.ContainsRune(" ,;:().", r) })
		for status := range searchStatuses {
			if !slices.Contains(words, status) {
				t.Errorf("%s: onInvalidChoice %q does not name the status %s, which another outcome covers", v, desc, status)
			}
		}
		if !slices.Contains(words, outcomes.CodeUnknownStatus) {
			t.Errorf("%s: onInvalidChoice %q does not name its error code %s", v, desc, outcomes.CodeUnknownStatus)
		}
	}
}
