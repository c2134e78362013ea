package nodes_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/noderuntime/noderuntime/internal/nodes"
)

// These tests restate ../shared/ENGAGE.md §1–§3 by hand and compare the registry's
// catalog with it. They are the oracle the HTTP tests cannot be: those build their
// inputs from the catalog, so a wrong declaration would pass them.

type wantNode struct {
	id, display, method string
	aliases             []string
	versions            []string
	outcomes            []string // in catalog order
	successAlias        string   // "Success" on Update and Add Participant
}

var engageNodes = []wantNode{
	{"search-conversation", "Search Conversation", "Search Chat", nil, []string{"1.0", "1.1", "1.3"},
		[]string{"noConversationFound", "conversationInQueue", "conversationActive", "conversationOnHold", "conversationClosed"}, ""},
	{"append-message", "Append Message", "Append Message", nil, []string{"1.0", "1.3", "1.4"},
		[]string{"onAppendMessageSuccess", "onAppendMessageFailure", "Failure"}, ""},
	{"create-conversation", "Create Conversation", "Create Conversation", nil, []string{"1.0", "1.2", "1.3"},
		[]string{"onConversationCreated", "onConversationFailed", "Failure"}, ""},
	{"update-conversation", "Update Conversation", "Update Conversation", nil, []string{"1.0"},
		[]string{"onConversationUpdatedSuccess", "onConversationUpdatedFailure", "Failure"}, "Success"},
	{"add-participant", "Add Participant", "Add Participant", nil, []string{"1.0"},
		[]string{"OnAddParticipantSuccess", "OnAddParticipantFailure", "Failure"}, "Success"},
	{"remove-participant", "Remove Participant", "Remove Participant", nil, []string{"1.0"},
		[]string{"onParticipantRemoved", "onRemoveParticipantFailure", "onFailure"}, ""},
	{"close-conversation", "Close conversation", "Close Chat", []string{"Close conversation"}, []string{"1.0"},
		[]string{"onConversationClosed", "onCloseConversationFailure", "onFailure"}, ""},
	{"reopen-conversation", "Re-open Conversation", "Reopen Conversation", []string{"Re-open Conversation"}, []string{"1.0"},
		[]string{"ConversationReopened", "ConversationReopenFailed", "onFailure"}, ""},
}

var standardOutcomes = []string{"onError", "onInvalidData", "onInvalidChoice", "onTimeout", "onAuthorizationFailure"}

// Outputs per node version (ENGAGE.md §3).
var engageOutputs = map[string][]string{
	"search-conversation 1.0": {"conversationId", "conversationExistsBool", "status"},
	"search-conversation 1.1": {"conversationId", "conversationExistsBool", "status", "description"},
	"search-conversation 1.3": {"conversationId", "conversationExistsBool", "status", "description", "aliasId", "teamId", "userId", "apiStatus", "code", "responsePayload"},
	"append-message 1.0":      {"TransId"},
	"append-message 1.3":      {"TransId"},
	"append-message 1.4":      {"TransId"},
	"create-conversation 1.0": {"TransId", "conversationId"},
	"create-conversation 1.2": {"TransId", "conversationId"},
	"create-conversation 1.3": {"TransId", "conversationId"},
	"update-conversation 1.0": {"transID"},
	"add-participant 1.0":     {"TransId"},
	"remove-participant 1.0":  {"TransId"},
	"close-conversation 1.0":  {"TransId"},
	"reopen-conversation 1.0": {"TransId"},
}

// The message types of ENGAGE.md §3's table, by channel, direction and the Append
// version that first allows them ("" direction: inbound and outbound). ENGAGE.md gives
// no direction for amb; that its "-response" types are inbound only is our decision
// (decisions.go), restated here so that changing it is a visible choice.
var engageMessages = []struct {
	since, channel, direction string
	types                     []string
}{
	{"1.0", "sms", "", []string{"text"}},
	{"1.0", "facebook", "", []string{"text", "text-with-attachments"}},
	{"1.0", "email", "", []string{"email"}},
	{"1.0", "whatsapp", "", []string{"text", "text-with-attachments"}},
	{"1.3", "whatsapp", "outbound", []string{"wab-buttons", "wab-list"}},
	{"1.3", "whatsapp", "inbound", []string{"wab-interactive-response"}},
	{"1.0", "livechat", "inbound", []string{"text"}},
	{"1.3", "livechat", "inbound", []string{"text-with-attachments", "lc-form-response", "lc-carousel-response", "lc-quick-replies-response"}},
	{"1.3", "livechat", "outbound", []string{"text-with-attachments", "text-with-lc-carousel", "text-with-lc-quick-replies"}},
	{"1.3", "livechat", "announcement", []string{"text"}},
	{"1.4", "amb", "", []string{"text-with-attachments"}},
	{"1.4", "amb", "inbound", []string{"amb-list-picker-response", "amb-time-picker-response", "amb-quick-replies-response", "amb-form-response"}},
	{"1.0", "api", "", []string{"text", "text-with-attachments"}},
}

// messagesAs says which Append version's message types a version allows.
var messagesAs = map[string]string{
	"append-message 1.0": "1.0", "append-message 1.3": "1.3", "append-message 1.4": "1.4",
	"create-conversation 1.0": "1.0", "create-conversation 1.2": "1.3", "create-conversation 1.3": "1.3",
}

var engageSearchChannels = map[string][]string{
	"1.0": {"sms", "facebook", "email", "livechat", "whatsapp"},
	"1.1": {"sms", "facebook", "email", "livechat", "whatsapp"},
	"1.3": {"sms", "facebook", "email", "livechat", "whatsapp", "amb", "api"},
}

func wantCombos(appendVersion string) []string {
	var out []string
	for _, m := range engageMessages {
		if m.since > appendVersion {
			continue
		}
		dirs := []string{m.direction}
		if m.direction == "" {
			dirs = []string{"inbound", "outbound"}
		}
		for _, d := range dirs {
			for _, typ := range m.types {
				out = append(out, m.channel+"/"+d+"/"+typ)
			}
		}
	}
	slices.Sort(out)
	return out
}

// catalogCombos reads the channel/direction/type combinations of a version's schema.
func catalogCombos(t *testing.T, schema map[string]any) (channels, combos []string) {
	t.Helper()
	raw, _ := json.Marshal(schema)
	var s struct {
		Properties struct {
			Channel struct {
				Enum []string `json:"enum"`
			} `json:"channel"`
		} `json:"properties"`
		AllOf []struct {
			If struct {
				Properties map[string]struct {
					Const string `json:"const"`
				} `json:"properties"`
			} `json:"if"`
			Then struct {
				Properties struct {
					MessageType struct {
						Enum []string `json:"enum"`
					} `json:"messageType"`
				} `json:"properties"`
			} `json:"then"`
		} `json:"allOf"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	for _, c := range s.AllOf {
		ch, dir := c.If.Properties["channel"].Const, c.If.Properties["direction"].Const
		if ch == "" || dir == "" {
			continue
		}
		for _, typ := range c.Then.Properties.MessageType.Enum {
			combos = append(combos, ch+"/"+dir+"/"+typ)
		}
	}
	slices.Sort(combos)
	return s.Properties.Channel.Enum, combos
}

func TestTheCatalogIsTheContractOfENGAGEmd(t *testing.T) {
	t.Parallel()
	cat := nodes.NewRegistry().Catalog()
	if len(cat.Nodes) != len(engageNodes) {
		t.Fatalf("%d nodes, want %d", len(cat.Nodes), len(engageNodes))
	}
	total := 0
	for i, want := range engageNodes {
		n := cat.Nodes[i]
		if n.ID != want.id || n.DisplayName != want.display || n.Method != want.method || !slices.Equal(n.MethodAliases, want.aliases) {
			t.Errorf("node %d: %s %q %q %v, want %s %q %q %v", i, n.ID, n.DisplayName, n.Method, n.MethodAliases, want.id, want.display, want.method, want.aliases)
		}
		if n.RecommendedVersion != want.versions[len(want.versions)-1] {
			t.Errorf("%s: recommended %s, want the last", n.ID, n.RecommendedVersion)
		}
		var versions []string
		for j, v := range n.Versions {
			total++
			versions = append(versions, v.Version)
			key := n.ID + " " + v.Version
			if v.Recommended != (j == len(n.Versions)-1) {
				t.Errorf("%s: recommended %v", key, v.Recommended)
			}
			var outputs, outcomes []string
			for _, o := range v.Outputs {
				outputs = append(outputs, o.Name)
			}
			if !slices.Equal(outputs, engageOutputs[key]) {
				t.Errorf("%s: outputs %v, want %v", key, outputs, engageOutputs[key])
			}
			for _, o := range v.Outcomes {
				outcomes = append(outcomes, o.Name)
				var wantAliases []string
				switch {
				case o.Name == "onAuthorizationFailure":
					wantAliases = []string{"onauthorizationfail"}
				case o.Name == want.outcomes[0] && want.successAlias != "":
					wantAliases = []string{want.successAlias}
				}
				if !slices.Equal(o.Aliases, wantAliases) {
					t.Errorf("%s: outcome %s aliases %v, want %v", key, o.Name, o.Aliases, wantAliases)
				}
			}
			if wantOutcomes := append(slices.Clone(want.outcomes), standardOutcomes...); !slices.Equal(outcomes, wantOutcomes) {
				t.Errorf("%s: outcomes %v, want %v", key, outcomes, wantOutcomes)
			}
			channels, combos := catalogCombos(t, v.InputSchema)
			if as, ok := messagesAs[key]; ok {
				if w := wantCombos(as); !slices.Equal(combos, w) {
					t.Errorf("%s: message types\n got %v\nwant %v", key, combos, w)
				}
			}
			if n.ID == "search-conversation" && !slices.Equal(channels, engageSearchChannels[v.Version]) {
				t.Errorf("%s: channels %v, want %v", key, channels, engageSearchChannels[v.Version])
			}
		}
		if !slices.Equal(versions, want.versions) {
			t.Errorf("%s: versions %v, want %v", n.ID, versions, want.versions)
		}
	}
	if total != 14 {
		t.Errorf("%d node versions, want 14", total)
	}
}

func TestOnlyCreate13HasTheProactiveID(t *testing.T) {
	t.Parallel()
	for _, n := range nodes.NewRegistry().Catalog().Nodes {
		for _, v := range n.Versions {
			_, has := v.InputSchema["properties"].(map[string]any)["livechatProactiveId"]
			if want := n.ID == "create-conversation" && v.Version == "1.3"; has != want {
				t.Errorf("%s %s: livechatProactiveId %v, want %v", n.ID, v.Version, has, want)
			}
		}
	}
}

func TestLookupTakesBothVersionSpellingsAndNamesWhatExists(t *testing.T) {
	t.Parallel()
	r := nodes.NewRegistry()
	for _, in := range []string{"1.3", "v1.3", "V1.3"} {
		v, err := r.Lookup("search-conversation", in)
		if err != nil || v.Number() != "1.3" || v.Node().ID() != "search-conversation" || !v.Recommended() {
			t.Errorf("Lookup(%q): %v, %v", in, v, err)
		}
	}
	for _, tc := range []struct {
		node, version string
		versions      []string
	}{
		{"search-conversation", "1.2", []string{"1.0", "1.1", "1.3"}},
		{"search-conversation", "v", []string{"1.0", "1.1", "1.3"}},
		{"search-conversation", "", []string{"1.0", "1.1", "1.3"}},
		{"append-message", "1.4.0", []string{"1.0", "1.3", "1.4"}},
		{"send-fax", "1.0", nil},
	} {
		_, err := r.Lookup(tc.node, tc.version)
		le, ok := err.(*nodes.LookupError)
		if !ok || !slices.Equal(le.Versions, tc.versions) {
			t.Errorf("Lookup(%q, %q): %v, want versions %v", tc.node, tc.version, err, tc.versions)
			continue
		}
		if len(tc.versions) > 0 && !strings.Contains(err.Error(), strings.Join(tc.versions, ", ")) {
			t.Errorf("error %q does not list the versions", err)
		}
	}
	if got := fmt.Sprint(r.NodeIDs()); got != "[search-conversation append-message create-conversation update-conversation add-participant remove-participant close-conversation reopen-conversation]" {
		t.Errorf("node IDs %s", got)
	}
}

// ENGAGE.md §3's channels: the wire value, the display name and the older names.
var engageChannelNames = []struct {
	wire, display string
	aliases       []string
}{
	{"sms", "SMS", nil},
	{"facebook", "Facebook Messenger", nil},
	{"email", "Email", nil},
	{"livechat", "Live Chat", nil},
	{"whatsapp", "WhatsApp", nil},
	{"amb", "Apple Messages for Business", []string{"abc"}},
	{"api", "API", nil},
}

// A version's catalog describes its channel input with the names of the channels it
// takes, and no others: Search 1.0 and 1.1 refuse amb (and its alias abc) and api with
// onInvalidData, so their catalog must not offer them (nor Append 1.0 and 1.3 amb).
func TestAVersionsCatalogNamesOnlyTheChannelsItTakes(t *testing.T) {
	t.Parallel()
	for _, v := range nodes.NewRegistry().Versions() {
		var entry struct {
			InputSchema struct {
				Properties map[string]struct {
					Description string   `json:"description"`
					Enum        []string `json:"enum"`
				} `json:"properties"`
			} `json:"inputSchema"`
		}
		if err := json.Unmarshal(v.CatalogJSON(), &entry); err != nil {
			t.Fatal(err)
		}
		ch, ok := entry.InputSchema.Properties["channel"]
		if !ok {
			continue
		}
		words := map[string]bool{}
		for _, w := range strings.FieldsFunc(ch.Description, func(r rune) bool { return strings.ContainsRune(" ,;().", r) }) {
			words[w] = true
		}
		for _, c := range engageChannelNames {
			takes := slices.Contains(ch.Enum, c.wire)
			names := append([]string{c.wire}, c.aliases...)
			for _, name := range names {
				if words[name] != takes {
					t.Errorf("%s takes %s: %v, but its channel description names %q: %v: %q", v, c.wire, takes, name, words[name], ch.Description)
				}
			}
			if strings.Contains(ch.Description, c.display) != takes {
				t.Errorf("%s takes %s: %v, but its channel description names %q: %v: %q", v, c.wire, takes, c.display, !takes, ch.Description)
			}
		}
	}
}
