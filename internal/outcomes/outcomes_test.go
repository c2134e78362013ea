package outcomes

import (
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
