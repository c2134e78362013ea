package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/noderuntime/noderuntime/internal/engage"
	"github.com/noderuntime/noderuntime/internal/outcomes"
	"github.com/noderuntime/noderuntime/internal/secrets"
	"github.com/noderuntime/noderuntime/internal/tenant"
)

// Credential is what a node needs to call Engage for one authorization.
type Credential struct {
	AuthorizationID string
	BaseURL         string
	Domain          string
	AccessToken     secrets.Value
	ExpiresAt       time.Time
}

// Credentials hands out access tokens for authorizations; internal/authstore is the real
// one. An error wrapping *outcomes.AuthorizationError means the authorization cannot be
// used (onAuthorizationFailure with its code); any other error is onError, and the
// context's deadline passing is onTimeout.
type Credentials interface {
	// Token returns a currently valid token.
	Token(ctx context.Context, t tenant.ID, authorizationID string) (Credential, error)
	// Refresh returns a new token after Engage rejected the given one with a 401.
	Refresh(ctx context.Context, t tenant.ID, authorizationID string, rejected secrets.Value) (Credential, error)
}

// Request is one execution of a node version.
type Request struct {
	Tenant          tenant.ID
	AuthorizationID string
	// Input is the node's input, a JSON object.
	Input json.RawMessage
}

// ExecutorOptions configure an Executor.
type ExecutorOptions struct {
	Engage      *engage.Client
	Credentials Credentials
	// Metrics, when set, counts executions by node, version and outcome.
	Metrics *Metrics
	// Logger receives what the outcome does not show: credential store failures and
	// panics. Nil: discarded.
	Logger *slog.Logger
}

// Executor runs node versions. It is safe for concurrent use.
type Executor struct {
	client  *engage.Client
	creds   Credentials
	metrics *Metrics
	logger  *slog.Logger
}

// NewExecutor returns an Executor.
func NewExecutor(o ExecutorOptions) *Executor {
	if o.Engage == nil || o.Credentials == nil {
		panic("nodes: NewExecutor needs an Engage client and Credentials")
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Executor{client: o.Engage, creds: o.Credentials, metrics: o.Metrics, logger: logger}
}

// Execute runs version v: it decodes and validates the input, gets a token, calls Engage
// under ctx's deadline and maps the answer to an outcome. It always returns a result:
// every failure is an outcome, never an error. The output holds exactly the version's
// output variables.
func (x *Executor) Execute(ctx context.Context, v *Version, req Request) (res outcomes.Result) {
	start := time.Now()
	defer func() {
		p := recover()
		if p != nil {
			x.logger.ErrorContext(ctx, "node execution panicked", slog.String("node", v.node.def.id),
				slog.String("version", v.number), slog.String("panic", fmt.Sprint(p)), slog.String("stack", string(debug.Stack())))
			res = outcomes.Fail(outcomes.OnError, outcomes.CodeInternal, "an internal error occurred")
		}
		if p == nil && res.Error != nil && res.Error.Code == outcomes.CodeInternal && errors.Is(ctx.Err(), context.Canceled) {
			// The caller left (or its connection was cut at shutdown) before the end: the
			// failure is its leaving, not the runtime's. Nobody follows this edge, so it
			// is no outcome to count (NoderuntimeHighErrorRatio would read it as one).
			res.Error.Code, res.Error.Message = outcomes.CodeCanceled, "the caller left before the execution ended"
			res = v.shape(res)
			return
		}
		res = v.shape(res)
		x.metrics.observe(v, res.Outcome, time.Since(start))
	}()
	return x.run(ctx, v, req)
}

func (x *Executor) run(ctx context.Context, v *Version, req Request) outcomes.Result {
	def := v.node.def
	in, err := parseInput(v, req.Input)
	if err != nil {
		return unapplied(invalidData(err))
	}
	if err := in.require(def.required, ""); err != nil {
		return unapplied(invalidData(err))
	}
	c, err := def.prepare(v, in)
	if err != nil {
		return unapplied(invalidData(err))
	}
	cred, err := x.creds.Token(ctx, req.Tenant, req.AuthorizationID)
	if err != nil {
		return unapplied(x.credentialFailure(ctx, req, err))
	}
	refreshed, repeated := false, false
	for {
		target := engage.Target{BaseURL: cred.BaseURL, Domain: cred.Domain}
		r, err := c.do(ctx, x.client, target, cred.AccessToken.Reveal())
		if err == nil {
			if def.succeed != nil {
				return def.succeed(v, r)
			}
			return outcomes.Success(def.success[0], map[string]any{"TransId": r.tid, "transID": r.tid})
		}
		e, ok := errors.AsType[*engage.Error](err)
		if !ok {
			x.logger.ErrorContext(ctx, "engage call failed without an engage error", slog.String("error", err.Error()))
			return outcomes.Fail(outcomes.OnError, outcomes.CodeInternal, "an internal error occurred")
		}
		switch {
		case refreshes(e) && !refreshed:
			refreshed = true
			cred, err = x.creds.Refresh(ctx, req.Tenant, req.AuthorizationID, cred.AccessToken)
			if err != nil {
				return unapplied(x.credentialFailure(ctx, req, err)) // after a 401: never a change
			}
			continue
		case def.readOnly && !repeated && retriesRead(e) && ctx.Err() == nil:
			repeated = true
			continue
		}
		res := engageFailure(v, e, refreshed)
		res.Unapplied = leftEngageAsItWas(e)
		return res
	}
}

// unapplied marks a failure that happened before any call to Engage left.
func unapplied(r outcomes.Result) outcomes.Result {
	r.Unapplied = true
	return r
}

// leftEngageAsItWas reports whether a failed call certainly changed nothing in Engage:
// it never left, or Engage refused it before acting (the token, the rate limit).
func leftEngageAsItWas(e *engage.Error) bool {
	switch e.Kind {
	case engage.KindInvalidRequest, engage.KindCircuitOpen, engage.KindUnauthorized, engage.KindRateLimited:
		return true
	}
	return false
}

func invalidData(err error) outcomes.Result {
	return outcomes.Fail(outcomes.OnInvalidData, outcomes.CodeInvalidInput, err.Error())
}

// credentialFailure maps an error of the credential store.
func (x *Executor) credentialFailure(ctx context.Context, req Request, err error) outcomes.Result {
	if ae, ok := errors.AsType[*outcomes.AuthorizationError](err); ok {
		code := ae.Code
		if code == "" {
			code = outcomes.CodeAuthorizationNotFound
		}
		return outcomes.Fail(outcomes.OnAuthorizationFailure, code, ae.Message)
	}
	// The token endpoint's own timeout (the refresh timeout, shorter than the execution's)
	// is the endpoint failing, as a 5xx is: token_unavailable below, not onTimeout.
	if errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		(errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, outcomes.ErrTokenUnavailable)) {
		return outcomes.Fail(outcomes.OnTimeout, outcomes.CodeTimeout, "the deadline passed while getting an access token")
	}
	// The store's error may name hosts or tables: it goes to the log, not to the flow.
	// Named as the access log line of the request names it, to find one from the other.
	x.logger.WarnContext(ctx, "credential store failed", slog.String("tenant", string(req.Tenant)),
		slog.String("authorizationId", req.AuthorizationID), slog.String("error", err.Error()))
	if errors.Is(err, context.Canceled) {
		return outcomes.Fail(outcomes.OnError, outcomes.CodeInternal, "the execution was canceled")
	}
	if errors.Is(err, outcomes.ErrTokenUnavailable) {
		return outcomes.Fail(outcomes.OnError, outcomes.CodeTokenUnavailable,
			"the token endpoint failed to issue a new access token, and the stored one has expired or was rejected; the authorization is still active, retry later")
	}
	return outcomes.Fail(outcomes.OnError, outcomes.CodeInternal, "the authorization's credentials could not be read")
}

// engageFailure maps a failed Engage call to the outcome of its column (decisions.go).
func engageFailure(v *Version, e *engage.Error, refreshed bool) outcomes.Result {
	def := v.node.def
	col, code := classify(e)
	if col == columnRejected && def.onReject != nil {
		if res, ok := def.onReject(v, e); ok {
			return res
		}
	}
	var o outcomes.Outcome
	switch col {
	case columnTimeout:
		o = outcomes.OnTimeout
	case columnAuthorization:
		o = outcomes.OnAuthorizationFailure
	case columnRejected:
		o = def.rejected
	case columnFailed:
		o = def.failed
	default:
		o = outcomes.OnError
	}
	return outcomes.Result{
		Outcome: o,
		Output:  engageOutput(e.HTTPStatus, e.Code, e.Description, e.Raw, 4),
		Error: &outcomes.Error{
			Code:              code,
			Message:           describe(e, refreshed),
			EngageStatus:      e.HTTPStatus,
			EngageCode:        e.Code,
			EngageDescription: e.Description,
		},
	}
}

// engageOutput holds the output variables that report Engage's answer as such; only
// versions that declare them (Search 1.1, 1.3) keep them.
// size is the number of variables the caller will hold in it, so the map never grows.
func engageOutput(status, code int, description string, raw []byte, size int) map[string]any {
	out := make(map[string]any, size)
	out["apiStatus"] = status
	out["code"] = code
	out["description"] = description
	out["responsePayload"] = string(raw)
	return out
}

// describe is the human message of a failed Engage call. It never holds a token (the
// engage client scrubs its errors) and never the request.
func describe(e *engage.Error, refreshed bool) string {
	var b strings.Builder
	switch e.Kind {
	case engage.KindTimeout:
		return "no answer from Engage before the deadline"
	case engage.KindCanceled:
		return "the execution was canceled"
	case engage.KindUnauthorized:
		if e.HTTPStatus == 403 {
			b.WriteString("Engage refused the access token for this domain")
		} else if refreshed {
			b.WriteString("Engage refused the access token again after a refresh")
		} else {
			b.WriteString("Engage refused the access token")
		}
	case engage.KindBusiness:
		b.WriteString("Engage refused the request")
	case engage.KindRateLimited:
		b.WriteString("Engage is rate limiting")
		if e.RetryAfter > 0 {
			fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
		}
	case engage.KindCircuitOpen:
		return "Engage at this base URL has been failing; calls are refused for a few seconds"
	case engage.KindUpstream:
		switch {
		case e.HTTPStatus == 0:
			return "Engage could not be reached: the connection failed"
		case e.HTTPStatus >= 500:
			b.WriteString("Engage failed")
		default:
			b.WriteString("Engage's answer could not be read")
		}
	default:
		return "the call to Engage could not be made: " + errText(e.Err)
	}
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.HTTPStatus)
	}
	if e.Code != 0 {
		fmt.Fprintf(&b, ", code %d", e.Code)
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(clipN(e.Description, 256))
	}
	return b.String()
}

func errText(err error) string {
	if err == nil {
		return "unknown reason"
	}
	return err.Error()
}

// shape gives the result exactly the version's output variables: those the execution
// produced, the others at their zero value, so a flow can rely on every one of them.
func (v *Version) shape(res outcomes.Result) outcomes.Result {
	if v.hasExactly(res.Output) {
		return res // the usual success: nothing to add or drop, no second map
	}
	out := make(map[string]any, len(v.outputs))
	for _, name := range v.outputs {
		if val, ok := res.Output[name]; ok {
			out[name] = val
		} else {
			out[name] = outputByName[name].zero()
		}
	}
	res.Output = out
	return res
}

// hasExactly reports whether out holds exactly the version's output variables.
func (v *Version) hasExactly(out map[string]any) bool {
	if len(out) != len(v.outputs) {
		return false
	}
	for _, name := range v.outputs {
		if _, ok := out[name]; !ok {
			return false
		}
	}
	return true
}
