package nodes

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/noderuntime/noderuntime/internal/outcomes"
)

// The catalog: what a flow designer needs to build against a node version. It is
// generated, once, from the same definitions the Executor runs.

// Catalog is every node with every version.
type Catalog struct {
	Nodes []CatalogNode `json:"nodes"`
}

// CatalogNode is one node.
type CatalogNode struct {
	ID                 string           `json:"id"`
	DisplayName        string           `json:"displayName"`
	Method             string           `json:"method"`
	MethodAliases      []string         `json:"methodAliases,omitempty"`
	RecommendedVersion string           `json:"recommendedVersion"`
	Versions           []CatalogVersion `json:"versions"`
}

// CatalogVersion is one version of a node.
type CatalogVersion struct {
	Version     string           `json:"version"`
	Recommended bool             `json:"recommended"`
	InputSchema map[string]any   `json:"inputSchema"`
	Outputs     []CatalogOutput  `json:"outputs"`
	Outcomes    []CatalogOutcome `json:"outcomes"`
}

// CatalogVersionDetail is one version with its node's names.
type CatalogVersionDetail struct {
	Node          string   `json:"node"`
	DisplayName   string   `json:"displayName"`
	Method        string   `json:"method"`
	MethodAliases []string `json:"methodAliases,omitempty"`
	CatalogVersion
}

// CatalogOutput is one output variable.
type CatalogOutput struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Description string `json:"description"`
}

// CatalogOutcome is one outcome edge. Aliases are other spellings a flow may have wired.
type CatalogOutcome struct {
	Name        string   `json:"name"`
	Aliases     []string `json:"aliases,omitempty"`
	Kind        string   `json:"kind"`
	Description string   `json:"description"`
}

// Outcome kinds in the catalog.
const (
	KindSuccess = "success"
	KindFailure = "failure"
)

type outcomeDecl struct {
	name    outcomes.Outcome
	aliases []string
	kind    string
	when    string
}

var standardWhen = map[outcomes.Outcome]string{
	outcomes.OnError:       "The runtime could not run the node: the credential store is unreachable, a stored secret does not decrypt, the token endpoint failed while the stored token had expired or just after Engage rejected it (a 401 earns one refresh), or an internal error.",
	outcomes.OnInvalidData: "The input lacks a field the channel or message type needs, or a value is malformed (bad timestamp, unknown channel, text too long, a field this version does not have). Engage is not called.",
	// Only Search chooses among Engage's values (its own text says when); every other
	// node's answer has nothing to choose from.
	outcomes.OnInvalidChoice:        "Not taken by this node: Engage's answer to it holds no value to choose an outcome by. Every node declares the five standard outcomes (ENGAGE.md §2), so a flow may wire it.",
	outcomes.OnTimeout:              "No answer from Engage before the execution's deadline (timeoutMs), token work included.",
	outcomes.OnAuthorizationFailure: "The authorization is unknown, deleted, another tenant's, pending or needs re-authorization, or Engage rejected the token: again after one refresh (401), or for this domain (403, which a refresh would not change).",
}

// whenInvalidIDs is onInvalidData of the nodes that take IDs only (Update, Add and Remove
// Participant, Close, Re-open).
var whenInvalidIDs = fmt.Sprintf("The input lacks a field the node needs (only spaces is not given), has a field this version does not have, or an ID that Engage's URL path cannot carry: \".\", \"..\", one with any of %s or a control character, or one over %d characters. Engage is not called.", pathIDForbiddenList, MaxPathIDLength)

const (
	whenRejected = "Engage said no: a 4xx business error (unknown conversation, conversation closed, invalid request, ...)."
	whenFailed   = "Engage failed otherwise: a 5xx, a 429, a connection failure, an answer that is not Engage's readable envelope (a proxy's error page, say), or the circuit breaker open while Engage keeps failing."
)

// declaredOutcomes lists a node's outcomes in catalog order: its own successes, its
// failure columns, then the standard five.
func declaredOutcomes(def *definition) []outcomeDecl {
	var out []outcomeDecl
	for _, o := range def.success {
		d := outcomeDecl{name: o, kind: KindSuccess, when: def.when[o]}
		if def.successAlias != "" {
			d.aliases = []string{def.successAlias}
		}
		out = append(out, d)
	}
	standard := outcomes.Standard()
	isStandard := func(o outcomes.Outcome) bool { return slices.Contains(standard, o) }
	if !isStandard(def.rejected) {
		out = append(out, outcomeDecl{name: def.rejected, kind: KindFailure, when: cmp.Or(def.rejectedWhen, whenRejected)})
	}
	if !isStandard(def.failed) && def.failed != def.rejected {
		out = append(out, outcomeDecl{name: def.failed, kind: KindFailure, when: cmp.Or(def.failedWhen, whenFailed)})
	}
	for _, o := range standard {
		d := outcomeDecl{name: o, kind: KindFailure, when: cmp.Or(def.when[o], standardWhen[o])}
		if o == outcomes.OnAuthorizationFailure {
			d.aliases = []string{outcomes.AliasAuthorizationFail}
		}
		if o == outcomes.OnInvalidData && !slices.Contains(def.required, "channel") {
			// No channel, message type, timestamp or text: the generic examples do not
			// fit, the ID rules do.
			d.when = whenInvalidIDs
		}
		out = append(out, d)
	}
	return out
}

// buildCatalog encodes the catalog once. Only the JSON is kept: the catalog's Go values
// (a JSON Schema of nested maps per version) are thousands of small pointer-holding
// objects, which every garbage collection would scan again for the life of the process.
func (r *Registry) buildCatalog() {
	for _, n := range r.nodes {
		for _, v := range n.versions {
			detail := CatalogVersionDetail{
				Node: n.def.id, DisplayName: n.def.displayName, Method: n.def.method,
				MethodAliases: n.def.methodAliases, CatalogVersion: v.buildCatalog(),
			}
			v.catalogJSON = mustJSON(detail)
		}
	}
	r.catalogJSON = mustJSON(r.Catalog())
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("nodes: catalog: " + err.Error())
	}
	return append(b, '\n')
}

// Catalog returns the catalog of every node version, built anew on each call.
func (r *Registry) Catalog() Catalog {
	var c Catalog
	for _, n := range r.nodes {
		cn := CatalogNode{
			ID: n.def.id, DisplayName: n.def.displayName, Method: n.def.method,
			MethodAliases:      n.def.methodAliases,
			RecommendedVersion: n.Recommended().number,
		}
		for _, v := range n.versions {
			cn.Versions = append(cn.Versions, v.buildCatalog())
		}
		c.Nodes = append(c.Nodes, cn)
	}
	return c
}

// CatalogJSON is the catalog as JSON (GET /v1/nodes), built once.
func (r *Registry) CatalogJSON() []byte { return r.catalogJSON }

// CatalogJSON is the version's catalog entry with its node's names, as JSON (GET
// /v1/nodes/{node}/versions/{version}), built once.
func (v *Version) CatalogJSON() []byte { return v.catalogJSON }

func (v *Version) buildCatalog() CatalogVersion {
	cv := CatalogVersion{Version: v.number, Recommended: v.Recommended(), InputSchema: v.inputSchema()}
	for _, name := range v.outputs {
		o := outputByName[name]
		cv.Outputs = append(cv.Outputs, CatalogOutput{Name: o.name, Type: string(o.typ), Description: cmp.Or(v.node.def.outputWhen[name], o.desc)})
	}
	for _, d := range v.declared {
		cv.Outcomes = append(cv.Outcomes, CatalogOutcome{Name: string(d.name), Aliases: d.aliases, Kind: d.kind, Description: d.when})
	}
	return cv
}

// inputSchema is the version's input as a JSON Schema (2020-12): the fields, those
// always required, and (in allOf) what each channel, direction and message type needs.
func (v *Version) inputSchema() map[string]any {
	def := v.node.def
	props := map[string]any{}
	for _, name := range v.inputs {
		props[name] = v.fieldSchema(fieldByName[name])
	}
	s := map[string]any{
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"title":                fmt.Sprintf("%s %s input", def.displayName, v.number),
		"description":          "Empty strings, null and [] count as not given, and so does a string of only spaces where a value is required. Where a string is expected a number is taken as the digits of its whole number (1.5551234567E10 as 15551234567; one with a fraction is refused); one given for a text (a message text, subject or body) is taken as written. Fields another channel or message type uses are ignored.",
		"type":                 "object",
		"properties":           props,
		"required":             def.required,
		"additionalProperties": false,
	}
	if def.conditions != nil {
		if c := def.conditions(v); len(c) > 0 {
			s["allOf"] = c
		}
	}
	return s
}

func (v *Version) fieldSchema(f *field) map[string]any {
	s := map[string]any{"description": v.fieldDescription(f)}
	switch f.kind {
	case kindString:
		s["type"] = "string"
	case kindPathID:
		s["type"] = "string"
		s["not"] = map[string]any{"enum": []string{".", ".."}}
		s["pattern"] = pathIDPattern
		s["maxLength"] = MaxPathIDLength
	case kindText:
		s["type"] = "string"
		if f.name == "text" {
			s["maxLength"] = MaxTextLength
		}
	case kindStrings:
		s["anyOf"] = []any{
			map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
			map[string]any{"type": "string"},
		}
	case kindObject:
		s["anyOf"] = []any{
			map[string]any{"type": "object"},
			map[string]any{"type": "array"},
			map[string]any{"type": "string", "contentMediaType": "application/json"},
		}
	case kindAttachments:
		s["type"] = "array"
		s["items"] = map[string]any{
			"type": "object",
			"properties": map[string]any{
				"mimeType": map[string]any{"type": "string", "description": "The MIME type, e.g. image/png."},
				"fileName": map[string]any{"type": "string", "description": "The file name."},
				"fileUrl":  map[string]any{"type": "string", "format": "uri", "description": "Where Engage fetches the file: an absolute http(s) URL."},
			},
			"required":             []string{"mimeType", "fileUrl"},
			"additionalProperties": false,
		}
	case kindTimestamp:
		s["type"] = "string"
		s["format"] = "date-time"
		s["pattern"] = "([Zz]|[+-]00:00)$"
	case kindChannel:
		s["type"] = "string"
		s["enum"] = v.channels
	case kindDirection:
		s["type"] = "string"
		s["enum"] = v.directions
	case kindMessageType:
		s["type"] = "string"
		s["enum"] = v.typeNames
	}
	return s
}

// fieldDescription is f's description in version v. The channel's description names
// only the channels v takes: a version's catalog never offers a channel (or an alias of
// one) that the version refuses.
func (v *Version) fieldDescription(f *field) string {
	if f.kind != kindChannel {
		return f.desc
	}
	var wires, displays, aliases []string
	for _, c := range channelTable {
		if !v.channelSet[c.wire] {
			continue
		}
		wires = append(wires, c.wire)
		displays = append(displays, c.display)
		for _, a := range c.aliases {
			aliases = append(aliases, a+" is an alias of "+c.wire)
		}
	}
	d := fmt.Sprintf("The channel, as its wire value (%s) or display name (%s), case-insensitive",
		strings.Join(wires, ", "), strings.Join(displays, ", "))
	if len(aliases) > 0 {
		d += "; " + strings.Join(aliases, "; ")
	}
	return d + "."
}

// channelNeeds are the fields one channel asks for.
type channelNeeds struct {
	required, optional []string
}

// channelConditions says, per channel of the version, which fields it requires.
func channelConditions(v *Version, needs map[string]channelNeeds) []any {
	var out []any
	for _, ch := range v.channels {
		var req []string
		for _, name := range needs[ch].required {
			if v.inputSet[name] {
				req = append(req, name)
			}
		}
		if len(req) > 0 {
			out = append(out, ifThen(map[string]string{"channel": ch}, map[string]any{"required": req}))
		}
	}
	return out
}

// messageConditions says which directions each channel allows, which message types each
// channel and direction allow, and what each message type requires.
func messageConditions(v *Version) []any {
	var out []any
	for _, ch := range v.channels {
		var dirs []string
		for _, d := range v.directions {
			if len(v.msgTypes[msgKey{channel: ch, direction: d}]) > 0 {
				dirs = append(dirs, d)
			}
		}
		out = append(out, ifThen(map[string]string{"channel": ch},
			map[string]any{"properties": map[string]any{"direction": map[string]any{"enum": dirs}}}))
		for _, d := range dirs {
			out = append(out, ifThen(map[string]string{"channel": ch, "direction": d},
				map[string]any{"properties": map[string]any{"messageType": map[string]any{"enum": v.msgTypes[msgKey{channel: ch, direction: d}]}}}))
		}
	}
	for _, name := range v.typeNames {
		mt := messageTypeByName[name]
		then := map[string]any{}
		var req []string
		var anyOf []any
		for _, group := range mt.requirements() {
			if len(group) == 1 {
				req = append(req, group[0])
				continue
			}
			for _, f := range group {
				anyOf = append(anyOf, map[string]any{"required": []string{f}})
			}
		}
		if len(req) > 0 {
			then["required"] = req
		}
		if len(anyOf) > 0 {
			then["anyOf"] = anyOf
		}
		out = append(out, ifThen(map[string]string{"messageType": name}, then))
	}
	return out
}

// ifThen is {"if": {fields equal these values}, "then": then}.
func ifThen(when map[string]string, then map[string]any) map[string]any {
	props := map[string]any{}
	var req []string
	for _, k := range []string{"channel", "direction", "messageType"} {
		if val, ok := when[k]; ok {
			props[k] = map[string]any{"const": val}
			req = append(req, k)
		}
	}
	return map[string]any{"if": map[string]any{"properties": props, "required": req}, "then": then}
}
