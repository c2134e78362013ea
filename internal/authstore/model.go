package authstore

import (
	"time"

	"github.com/noderuntime/noderuntime/internal/secrets"
)

// Kind is how an authorization obtains its tokens.
type Kind string

const (
	// KindWebexLogin: a user signs in on the Webex login page (authorization code with
	// PKCE); the runtime keeps a refresh token that may rotate.
	KindWebexLogin Kind = "webex-login"
	// KindClientCredentials: standalone Engage's tenant ID and secret, exchanged at
	// {base}/oauth/token for tokens without a refresh token.
	KindClientCredentials Kind = "client-credentials"
)

// Status is where an authorization is in its life: pending -> active <->
// needs_reauthorization. A deleted authorization has no row and no status.
type Status string

const (
	StatusPending              Status = "pending"
	StatusActive               Status = "active"
	StatusNeedsReauthorization Status = "needs_reauthorization"
)

// Statuses lists every status, the label values of the authorizations gauge.
var Statuses = []Status{StatusPending, StatusActive, StatusNeedsReauthorization}

// Authorization is what an API caller or the admin page may see of an authorization:
// never a secret or a token.
type Authorization struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Kind   Kind   `json:"kind"`
	Status Status `json:"status"`
	// StatusReason says why the authorization needs re-authorization (or is pending).
	StatusReason string `json:"statusReason,omitempty"`
	Region       string `json:"region,omitempty"`
	BaseURL      string `json:"baseUrl"`
	Domain       string `json:"domain"`
	// TenantID is the client-credentials tenant ID (an identifier, not a secret).
	TenantID  string    `json:"tenantId,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Credential is what a node needs to call Engage for an authorization.
type Credential struct {
	AuthorizationID string
	BaseURL         string
	Domain          string
	AccessToken     secrets.Value
	// ExpiresAt is the access token's expiry; zero when the provider gave none.
	ExpiresAt time.Time
}

// CreateRequest adds an authorization. Region or BaseURL names the Engage base URL;
// either must be on the allowlist.
type CreateRequest struct {
	Name         string
	Kind         Kind
	Region       string
	BaseURL      string
	Domain       string
	TenantID     string        // client credentials only
	TenantSecret secrets.Value // client credentials only
}

// ReauthorizeRequest re-authorizes an authorization. For client credentials it may
// carry new credentials (the usual reason to re-authorize); empty fields keep the
// stored ones. The Webex login ignores it.
type ReauthorizeRequest struct {
	TenantID     string
	TenantSecret secrets.Value
	// CredentialsGiven: the request named tenantId or tenantSecret, even empty (the
	// API's JSON); a Webex login refuses them as it refuses values. An admin form's
	// empty field is not given.
	CredentialsGiven bool
}

// Started is the answer of Create and Reauthorize: the authorization, and for the Webex
// login the URL the user must visit to finish it.
type Started struct {
	Authorization
	AuthorizeURL string `json:"authorizeUrl,omitempty"`
}

// Actor names who asked for a change, for the audit trail.
type Actor string

const (
	ActorAPI    Actor = "api"
	ActorAdmin  Actor = "admin"
	ActorLogin  Actor = "login"  // the OAuth callback
	ActorSystem Actor = "system" // the token path (refresh failures)
)
