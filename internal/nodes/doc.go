// Package nodes is the node runtime: the registry of the Engage nodes and their versions
// (../shared/ENGAGE.md §1), the catalog generated from it, and the Executor that runs one
// node version: decode and validate the input, get a token, call Engage under the
// request's deadline, and map the answer to an outcome and output variables.
//
// Each node lives in one file (search_conversation.go, append_message.go, ...) that
// declares its versions as small deltas over one implementation: what a version adds
// (channels, message types, input fields, output variables), never a copy. Every place
// where ENGAGE.md says "our decision" (wire strings, status to outcome, which Engage
// answer leads to which outcome column, retry policy, limits) is in decisions.go.
//
// It knows internal/engage and internal/outcomes. It does not know HTTP serving,
// Postgres or the authorization store: tokens come through the small Credentials
// interface, which internal/app satisfies with internal/authstore.
package nodes
