package nodes

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// definition is one node as its file declares it: names, outcome columns, every input
// field and output variable any version has, the versions as deltas, and the one
// implementation they share.
type definition struct {
	id, displayName, method string
	// methodAliases are other names of the method (the seed's table for close and
	// re-open).
	methodAliases []string

	// success lists the node-specific success outcomes; successAlias is the other
	// spelling of the (single) success outcome some pages use ("Success").
	success      []outcomes.Outcome
	successAlias string
	// rejected is the outcome when Engage says no (4xx business error), failed when
	// anything else goes wrong at run time (5xx, 429, a bad answer). Search has no
	// failure edge of its own: both are onError.
	rejected, failed outcomes.Outcome
	// rejectedWhen and failedWhen, when set, say for the catalog when rejected and
	// failed are taken, instead of the generic texts (whose examples do not fit every
	// node).
	rejectedWhen, failedWhen string
	// readOnly nodes may repeat a call once after a connection failure or 502/503/504.
	readOnly bool
	// when says, for the catalog, when each node-specific success outcome is taken; for
	// a standard outcome it replaces the generic text where the node can say more.
	when map[outcomes.Outcome]string

	// outputWhen, when set, describes an output variable for the catalog instead of its
	// shared description (fields.go), where that one speaks of another node too.
	outputWhen map[string]string

	// required are the input fields every execution needs, whatever the channel.
	required []string

	// versions are the node's versions, oldest first; each adds to the one before and
	// the last is the recommended one.
	versions []delta

	// prepare decodes and validates the input for version v and returns the Engage call
	// to make; an *InvalidInputError means onInvalidData.
	prepare func(v *Version, in *input) (call, error)
	// succeed maps Engage's answer to the result; nil: the success outcome with TransId.
	succeed func(v *Version, r *reply) outcomes.Result
	// onReject may turn an Engage error into a result other than the column's (Search's
	// 404 is noConversationFound).
	onReject func(v *Version, e *engage.Error) (outcomes.Result, bool)
	// conditions adds the channel- and type-dependent requirements to the version's
	// input JSON Schema; nil when there are none.
	conditions func(v *Version) []any
}

// delta is what one version adds to the version before it.
type delta struct {
	version string
	// inputs are the input fields this version adds (the first version: all of its own).
	inputs []string
	// outputs are the output variables this version adds.
	outputs []string
	// channels are the channels this version adds (nodes without message types).
	channels []string
	// messages, when set, is the message set from this version on; it also decides the
	// channels and the rich input fields (those of the types it allows).
	messages messageSet
}

// call is one prepared Engage call; do may run twice (after a refresh, or a read retry).
type call struct {
	do func(ctx context.Context, c *engage.Client, t engage.Target, token string) (*reply, error)
}

// reply is what a successful Engage call gave back.
type reply struct {
	env            engage.Envelope
	tid            string
	conversationID string
	search         engage.SearchValue
}

// Node is one node of the catalog with its versions.
type Node struct {
	def      *definition
	versions []*Version
}

// ID is the node's ID, e.g. "search-conversation".
func (n *Node) ID() string { return n.def.id }

// DisplayName is the node's name in the flow designer.
func (n *Node) DisplayName() string { return n.def.displayName }

// Method is the node's method.
func (n *Node) Method() string { return n.def.method }

// Versions lists the node's versions, oldest first.
func (n *Node) Versions() []*Version { return n.versions }

// Recommended is the version new flows should use: the newest.
func (n *Node) Recommended() *Version { return n.versions[len(n.versions)-1] }

// VersionNumbers lists the version numbers, oldest first.
func (n *Node) VersionNumbers() []string {
	out := make([]string, len(n.versions))
	for i, v := range n.versions {
		out[i] = v.number
	}
	return out
}

// Version is one version of a node: what it accepts, what it outputs, which outcomes it
// can take. It is immutable once the registry is built.
type Version struct {
	node   *Node
	number string
	index  int // position in the registry, for the metrics

	inputs     []string            // input fields, in catalog order
	inputSet   map[string]bool     // the same, as a set
	outputs    []string            // output variables, in catalog order
	sorted     []string            // the same, in byte order
	channels   []string            // channels, in channelTable order
	channelSet map[string]bool     // the same, as a set
	messages   messageSet          // 0: the node sends no message
	msgAllowed map[msgKey]bool     // channel, direction, type -> allowed
	msgTypes   map[msgKey][]string // channel, direction -> allowed types (key.typ empty)
	directions []string            // directions allowed on some channel
	typeNames  []string            // message types allowed on some channel
	declared   []outcomeDecl       // outcomes, catalog order

	catalogJSON []byte // its catalog entry; the Go values are rebuilt on demand (below)
}

type msgKey struct{ channel, direction, typ string }

// Node is the node this version belongs to.
func (v *Version) Node() *Node { return v.node }

// Number is the version number, e.g. "1.3".
func (v *Version) Number() string { return v.number }

// Recommended reports whether this is the node's recommended (newest) version.
func (v *Version) Recommended() bool { return v == v.node.Recommended() }

// String is "search-conversation 1.3".
func (v *Version) String() string { return v.node.def.id + " " + v.number }

// Declares reports whether o is one of the version's outcomes.
func (v *Version) Declares(o outcomes.Outcome) bool {
	// A scan of a dozen outcomes, not a map: a map per version is memory every garbage
	// collection marks again (docs/performance.md).
	return slices.ContainsFunc(v.declared, func(d outcomeDecl) bool { return d.name == o })
}

// Outcomes lists the version's outcomes in catalog order.
func (v *Version) Outcomes() []outcomes.Outcome {
	out := make([]outcomes.Outcome, len(v.declared))
	for i, d := range v.declared {
		out[i] = d.name
	}
	return out
}

// Outputs lists the version's output variables in catalog order.
func (v *Version) Outputs() []string { return slices.Clone(v.outputs) }

// SortedOutputs returns the version's output variables in byte order, the order an
// answer lists them in. The slice is shared: read it, never change it.
func (v *Version) SortedOutputs() []string { return v.sorted }

// Registry holds every node version the runtime serves. Build it once with NewRegistry;
// it is immutable and safe for concurrent use.
type Registry struct {
	nodes       []*Node
	byID        map[string]*Node
	versions    []*Version
	catalogJSON []byte
}

// definitions lists the nodes in catalog order (ENGAGE.md §1).
func definitions() []*definition {
	return []*definition{
		searchConversation(),
		appendMessage(),
		createConversation(),
		updateConversation(),
		addParticipant(),
		removeParticipant(),
		closeConversation(),
		reopenConversation(),
	}
}

// NewRegistry builds the registry of every node version of ENGAGE.md §1. It panics if a
// definition is inconsistent (a programming error, caught by the package's tests).
func NewRegistry() *Registry {
	r := &Registry{byID: map[string]*Node{}}
	for _, def := range definitions() {
		n := &Node{def: def}
		var prev *Version
		for _, d := range def.versions {
			v := buildVersion(n, prev, d)
			v.index = len(r.versions)
			n.versions = append(n.versions, v)
			r.versions = append(r.versions, v)
			prev = v
		}
		r.nodes = append(r.nodes, n)
		r.byID[def.id] = n
	}
	r.buildCatalog()
	return r
}

// buildVersion applies delta d to the version before it.
func buildVersion(n *Node, prev *Version, d delta) *Version {
	v := &Version{node: n, number: d.version}
	if prev != nil {
		v.inputs = slices.Clone(prev.inputs)
		v.outputs = slices.Clone(prev.outputs)
		v.channels = slices.Clone(prev.channels)
		v.messages = prev.messages
	}
	v.inputs = append(v.inputs, d.inputs...)
	v.outputs = append(v.outputs, d.outputs...)
	v.channels = append(v.channels, d.channels...)
	if d.messages != 0 {
		v.messages = d.messages
	}
	if v.messages != 0 {
		v.applyMessages()
	}
	v.channels = inChannelOrder(v.channels)
	v.channelSet = setOf(v.channels)
	v.inputSet = setOf(v.inputs)
	for _, name := range v.inputs {
		if _, ok := fieldByName[name]; !ok {
			panic(fmt.Sprintf("nodes: %s %s: input %q has no field definition", n.def.id, d.version, name))
		}
	}
	v.sorted = slices.Sorted(slices.Values(v.outputs))
	for _, name := range v.outputs {
		if _, ok := outputByName[name]; !ok {
			panic(fmt.Sprintf("nodes: %s %s: output %q has no definition", n.def.id, d.version, name))
		}
	}
	v.declared = declaredOutcomes(n.def)
	return v
}

// applyMessages derives, from the version's message set, the allowed message types per
// channel and direction, the channels, and the rich input fields those types carry.
func (v *Version) applyMessages() {
	v.msgAllowed = map[msgKey]bool{}
	v.msgTypes = map[msgKey][]string{}
	dirs, types, channels := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, rule := range messageRules {
		if rule.since > v.messages {
			continue
		}
		ruleDirs := []string{rule.direction}
		if rule.direction == "" {
			ruleDirs = []string{dirInbound, dirOutbound}
		}
		for _, dir := range ruleDirs {
			for _, t := range rule.types {
				k := msgKey{rule.channel, dir, t}
				if v.msgAllowed[k] {
					continue
				}
				v.msgAllowed[k] = true
				dk := msgKey{channel: rule.channel, direction: dir}
				v.msgTypes[dk] = append(v.msgTypes[dk], t)
				dirs[dir], types[t], channels[rule.channel] = true, true, true
			}
		}
	}
	for _, d := range directionOrder {
		if dirs[d] {
			v.directions = append(v.directions, d)
		}
	}
	for _, mt := range messageTypes {
		if types[mt.name] {
			v.typeNames = append(v.typeNames, mt.name)
			if mt.rich != "" && !slices.Contains(v.inputs, mt.rich) {
				v.inputs = append(v.inputs, mt.rich)
			}
		}
	}
	v.channels = v.channels[:0]
	for c := range channels {
		v.channels = append(v.channels, c)
	}
}

func inChannelOrder(chs []string) []string {
	out := make([]string, 0, len(chs))
	for _, c := range channelTable {
		if slices.Contains(chs, c.wire) {
			out = append(out, c.wire)
		}
	}
	return out
}

func setOf(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// firstVersionWith returns the number of the node's first version for which has is
// true, or "".
func (n *Node) firstVersionWith(has func(*Version) bool) string {
	for _, v := range n.versions {
		if has(v) {
			return v.number
		}
	}
	return ""
}

// Nodes lists the nodes in catalog order.
func (r *Registry) Nodes() []*Node { return r.nodes }

// Versions lists every node version, node by node, oldest first.
func (r *Registry) Versions() []*Version { return r.versions }

// Node returns the node with the given ID.
func (r *Registry) Node(id string) (*Node, bool) {
	n, ok := r.byID[id]
	return n, ok
}

// NodeIDs lists the node IDs in catalog order.
func (r *Registry) NodeIDs() []string {
	out := make([]string, len(r.nodes))
	for i, n := range r.nodes {
		out[i] = n.def.id
	}
	return out
}

// LookupError says why Lookup found nothing: an unknown node (Versions is empty) or an
// unknown version of a known node (Versions lists the ones that exist).
type LookupError struct {
	Node, Version string
	Versions      []string
}

func (e *LookupError) Error() string {
	if len(e.Versions) == 0 {
		return fmt.Sprintf("no node %q", e.Node)
	}
	return fmt.Sprintf("node %q has no version %q; it has %s", e.Node, e.Version, strings.Join(e.Versions, ", "))
}

// Lookup returns a node version. The version may be written "1.3" or "v1.3".
func (r *Registry) Lookup(node, version string) (*Version, error) {
	n, ok := r.byID[node]
	if !ok {
		return nil, &LookupError{Node: node, Version: version}
	}
	num := version
	if len(num) > 1 && (num[0] == 'v' || num[0] == 'V') {
		num = num[1:]
	}
	for _, v := range n.versions {
		if v.number == num {
			return v, nil
		}
	}
	return nil, &LookupError{Node: node, Version: version, Versions: n.VersionNumbers()}
}

// ReadOnly reports whether the version's node never changes anything in Engage (Search):
// its call may be repeated.
func (v *Version) ReadOnly() bool { return v.node.def.readOnly }
