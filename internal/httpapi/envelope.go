package httpapi

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/noderuntime/noderuntime/internal/jsonscan"
)

// decodeFast reads the usual execution envelope without encoding/json: each field
// under its exact name and at most once, strings without escapes, input an object,
// timeoutMs an integer, context an object of its three strings. For anything else it
// answers false, having possibly set some fields, and the caller decodes with
// decodeBytes from a zero value: every body that would be refused (invalid UTF-8 or
// JSON, unknown fields, a key given twice, trailing data, a wrong type) is refused
// there, with its message. Whenever decodeFast accepts a body, decodeBytes accepts it
// with the same result (FuzzEnvelopeDecodeFast).
func (req *executionRequest) decodeFast(body []byte) bool {
	if !utf8.Valid(body) {
		return false
	}
	if _, lone := loneSurrogate(body); lone {
		return false // in input: decodeBytes refuses it
	}
	var seen [6]bool
	once := func(i int) bool {
		if seen[i] {
			return false
		}
		seen[i] = true
		return true
	}
	ok := jsonscan.Object(body, func(key, value []byte) bool {
		switch string(key) {
		case "node":
			return once(0) && plainField(&req.Node, value)
		case "version":
			return once(1) && plainField(&req.Version, value)
		case "authorizationId":
			return once(2) && plainField(&req.AuthorizationID, value)
		case "input":
			if !once(3) || value[0] != '{' {
				return false
			}
			req.Input = json.RawMessage(value)
			return true
		case "timeoutMs":
			if !once(4) || bytes.ContainsAny(value, ".eE") || !jsonscan.IsNumber(value) {
				return false
			}
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil {
				return false
			}
			req.TimeoutMs = &n
			return true
		case "context":
			if !once(5) || value[0] != '{' {
				return false
			}
			req.Context = &executionContext{}
			return req.Context.decodeFast(value)
		}
		return false // an unknown field, or a known one spelled otherwise
	})
	if !ok {
		return false
	}
	// A key given twice anywhere (inside input too) is refused by decodeBytes.
	_, dup := duplicateKey(body)
	return !dup
}

func (c *executionContext) decodeFast(data []byte) bool {
	var seen [3]bool
	return jsonscan.Object(data, func(key, value []byte) bool {
		var i int
		var dst *string
		switch string(key) {
		case "flowId":
			i, dst = 0, &c.FlowID
		case "nodeId":
			i, dst = 1, &c.NodeID
		case "transactionId":
			i, dst = 2, &c.TransactionID
		default:
			return false
		}
		if seen[i] {
			return false
		}
		seen[i] = true
		return plainField(dst, value)
	})
}

// plainField sets a string field from a string literal without escapes.
func plainField(dst *string, value []byte) bool {
	s, ok := jsonscan.PlainString(value)
	if ok {
		*dst = s
	}
	return ok
}
