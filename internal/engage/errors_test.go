package engage_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/noderuntime/noderuntime/internal/engage"
)

// KindOf names the kind of any error: that of the first *Error in its chain, and the
// caller's deadline or cancellation as such when no *Error carries them.
func TestKindOfNamesTheKindOfEveryError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want engage.Kind
	}{
		{"nil", nil, ""},
		{"a bare deadline", context.DeadlineExceeded, engage.KindTimeout},
		{"a wrapped deadline", fmt.Errorf("search: %w", context.DeadlineExceeded), engage.KindTimeout},
		{"a bare cancellation", context.Canceled, engage.KindCanceled},
		{"an Engage error", &engage.Error{Kind: engage.KindBusiness}, engage.KindBusiness},
		{"a wrapped Engage error around a deadline", fmt.Errorf("x: %w", &engage.Error{Kind: engage.KindUpstream, Err: context.DeadlineExceeded}), engage.KindUpstream},
		{"any other error", errors.New("boom"), ""},
	} {
		if got := engage.KindOf(tc.err); got != tc.want {
			t.Errorf("%s: KindOf = %q, want %q", tc.name, got, tc.want)
		}
	}
}
