package outcomes

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

func TestAuthorizationErrorSurvivesWrapping(t *testing.T) {
	err := fmt.Errorf("token: %w", &AuthorizationError{Code: CodeNeedsReauthorization, Message: "needs re-authorization"})
	var ae *AuthorizationError
	if !errors.As(err, &ae) || ae.Code != CodeNeedsReauthorization {
		t.Fatalf("%v", err)
	}
}

func TestFailCarriesAnErrorAndSuccessDoesNot(t *testing.T) {
	if r := Fail(OnError, CodeInternal, "x"); r.Error == nil || r.Error.Code != CodeInternal || r.Output == nil {
		t.Fatalf("%+v", r)
	}
	if r := Success(ConversationActive, nil); r.Error != nil || r.Output == nil {
		t.Fatalf("%+v", r)
	}
}

// The error codes are stable: flows and dashboards match on them, and docs/nodes.md
// lists them. A rename is a breaking change, not a refactoring.
func TestTheErrorCodesAreSpelledAsDocumented(t *testing.T) {
	t.Parallel()
	for got, want := range map[string]string{
		CodeInvalidInput:          "invalid_input",
		CodeAuthorizationNotFound: "authorization_not_found",
		CodeAuthorizationPending:  "authorization_pending",
		CodeNeedsReauthorization:  "authorization_needs_reauthorization",
		CodeEngageUnauthorized:    "engage_unauthorized",
		CodeTimeout:               "timeout",
		CodeEngageRejected:        "engage_rejected",
		CodeEngageRateLimited:     "engage_rate_limited",
		CodeEngageUnavailable:     "engage_unavailable",
		CodeEngageBadResponse:     "engage_bad_response",
		CodeCircuitOpen:           "engage_circuit_open",
		CodeUnknownStatus:         "unknown_status",
		CodeTokenUnavailable:      "token_unavailable",
		CodeInternal:              "internal",
		CodeCanceled:              "canceled",
	} {
		if got != want {
			t.Errorf("code %q, want %q", got, want)
		}
	}
}

// A result encodes as the execution answer's {outcome, output, error?}: a success has no
// error key, and an error has Engage's fields only when Engage answered (DESIGN.md).
func TestAResultEncodesAsTheAnswersOutcomeOutputAndError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		r    Result
		want string
	}{
		{"a success", Success(ConversationActive, map[string]any{"status": "active"}),
			`{"outcome":"conversationActive","output":{"status":"active"}}`},
		{"a failure before Engage", Fail(OnInvalidData, CodeInvalidInput, "input.channel: required"),
			`{"outcome":"onInvalidData","output":{},"error":{"code":"invalid_input","message":"input.channel: required"}}`},
		{"a failure Engage answered", Result{Outcome: OnAppendMessageFailure, Output: map[string]any{}, Unapplied: true,
			Error: &Error{Code: CodeEngageRejected, Message: "no", EngageStatus: 404, EngageCode: 1004, EngageDescription: "not found"}},
			`{"outcome":"onAppendMessageFailure","output":{},"error":{"code":"engage_rejected","message":"no","engageStatus":404,"engageCode":1004,"engageDescription":"not found"}}`},
	} {
		got, err := json.Marshal(tc.r)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %s (%v), want %s", tc.name, got, err, tc.want)
		}
	}
}

// The outcome names are the edges flows are wired to, spelled as the flow designer shows
// them (ENGAGE.md §2), capitals and their inconsistencies included
// ("OnAddParticipantSuccess", "ConversationReopened"): a respelling breaks every flow
// that follows the edge, as a renamed error code breaks a dashboard.
func TestTheOutcomeNamesAreSpelledAsTheFlowDesignerShowsThem(t *testing.T) {
	t.Parallel()
	for got, want := range map[Outcome]string{
		OnError:                      "onError",
		OnInvalidData:                "onInvalidData",
		OnInvalidChoice:              "onInvalidChoice",
		OnTimeout:                    "onTimeout",
		OnAuthorizationFailure:       "onAuthorizationFailure",
		NoConversationFound:          "noConversationFound",
		ConversationInQueue:          "conversationInQueue",
		ConversationActive:           "conversationActive",
		ConversationOnHold:           "conversationOnHold",
		ConversationClosed:           "conversationClosed",
		OnAppendMessageSuccess:       "onAppendMessageSuccess",
		OnAppendMessageFailure:       "onAppendMessageFailure",
		OnConversationCreated:        "onConversationCreated",
		OnConversationFailed:         "onConversationFailed",
		OnConversationUpdatedSuccess: "onConversationUpdatedSuccess",
		OnConversationUpdatedFailure: "onConversationUpdatedFailure",
		OnAddParticipantSuccess:      "OnAddParticipantSuccess",
		OnAddParticipantFailure:      "OnAddParticipantFailure",
		OnParticipantRemoved:         "onParticipantRemoved",
		OnRemoveParticipantFailure:   "onRemoveParticipantFailure",
		OnConversationClosed:         "onConversationClosed",
		OnCloseConversationFailure:   "onCloseConversationFailure",
		ConversationReopened:         "ConversationReopened",
		ConversationReopenFailed:     "ConversationReopenFailed",
		Failure:                      "Failure",
		OnFailure:                    "onFailure",
	} {
		if string(got) != want {
			t.Errorf("outcome %q, want %q", got, want)
		}
	}
	if AliasAuthorizationFail != "onauthorizationfail" || AliasSuccess != "Success" {
		t.Errorf("aliases %q and %q, want onauthorizationfail and Success", AliasAuthorizationFail, AliasSuccess)
	}
	want := []Outcome{"onError", "onInvalidData", "onInvalidChoice", "onTimeout", "onAuthorizationFailure"}
	if fmt.Sprint(Standard()) != fmt.Sprint(want) {
		t.Errorf("standard outcomes %v, want %v in catalog order", Standard(), want)
	}
	mine := Standard()
	mine[0] = "changed"
	if Standard()[0] != OnError {
		t.Errorf("changing one caller's standard outcomes changed the next caller's")
	}
}
