// Package jsonscan reads the plain JSON of the execution path without reflection: the
// fields of an object as sub-slices of its text, a string literal without escapes as
// it is. Each function handles the common case and says so; for anything else (valid
// or not) it answers false, and the caller decodes with encoding/json, which stays the
// reference: whenever a function here accepts a text, encoding/json reads the same
// (the fuzz tests of this package and of its users hold it to that).
package jsonscan

import "unicode/utf8"

// Object calls field, in order, with each key and value of the JSON object in data, and
// reports whether all of data is one valid JSON object of the plain kind: keys of ASCII
// without escapes or control characters, values nested at most maxDepth deep. Keys
// (without their quotes) and values (the exact bytes, no surrounding space) are
// sub-slices of data. It stops and answers false as soon as field does, or at the first
// thing it does not handle; field may have been called for earlier fields by then, so a
// caller that falls back to encoding/json starts again from a zero value.
func Object(data []byte, field func(key, value []byte) bool) bool {
	s := scanner{data: data}
	s.space()
	if !s.consume('{') {
		return false
	}
	s.space()
	if s.consume('}') {
		return s.end()
	}
	for {
		s.space()
		key, ok := s.plainKey()
		if !ok {
			return false
		}
		s.space()
		if !s.consume(':') {
			return false
		}
		s.space()
		start := s.i
		if !s.value(0) {
			return false
		}
		if !field(key, data[start:s.i:s.i]) {
			return false
		}
		s.space()
		if s.consume(',') {
			continue
		}
		if s.consume('}') {
			return s.end()
		}
		return false
	}
}

// PlainString returns the text of a JSON string literal without escapes or control
// characters, in valid UTF-8: what json.Unmarshal decodes it to. ok is false for any
// other literal.
func PlainString(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	inner := b[1 : len(b)-1]
	ascii := true
	for _, c := range inner {
		if c < 0x20 || c == '"' || c == '\\' {
			return "", false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(inner) {
		return "", false // json.Unmarshal replaces bad bytes with U+FFFD
	}
	return string(inner), true
}

// IsNumber reports whether b is a JSON number (RFC 8259 §6).
func IsNumber(b []byte) bool {
	s := scanner{data: b}
	return s.number() && s.i == len(b)
}

// maxDepth bounds the nesting the scanner follows; deeper inputs go to
// encoding/json.
const maxDepth = 32

type scanner struct {
	data []byte
	i    int
}

func (s *scanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) consume(c byte) bool {
	if s.i < len(s.data) && s.data[s.i] == c {
		s.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (s *scanner) end() bool {
	s.space()
	return s.i == len(s.data)
}

// plainKey reads a key of ASCII without escapes or control characters.
func (s *scanner) plainKey() ([]byte, bool) {
	if !s.consume('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch {
		case c == '"':
			key := s.data[start:s.i:s.i]
			s.i++
			return key, true
		case c < 0x20 || c == '\\' || c >= utf8.RuneSelf:
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// value skips one valid JSON value.
func (s *scanner) value(depth int) bool {
	if s.i >= len(s.data) || depth > maxDepth {
		return false
	}
	switch c := s.data[s.i]; {
	case c == '"':
		return s.str()
	case c == '{':
		s.i++
		s.space()
		if s.consume('}') {
			return true
		}
		for {
			s.space()
			if s.i >= len(s.data) || s.data[s.i] != '"' || !s.str() {
				return false
			}
			s.space()
			if !s.consume(':') {
				return false
			}
			s.space()
			if !s.value(depth + 1) {
				return false
			}
			s.space()
			if s.consume(',') {
				continue
			}
			return s.consume('}')
		}
	case c == '[':
		s.i++
		s.space()
		if s.consume(']') {
			return true
		}
		for {
			s.space()
			if !s.value(depth + 1) {
				return false
			}
			s.space()
			if s.consume(',') {
				continue
			}
			return s.consume(']')
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return s.number()
	}
}

func (s *scanner) literal(lit string) bool {
	if len(s.data)-s.i >= len(lit) && string(s.data[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// str skips a string literal with valid escapes; like encoding/json it lets any byte
// from 0x20 up through.
func (s *scanner) str() bool {
	s.i++ // the opening quote
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch {
		case c == '"':
			s.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			s.i++
			if s.i >= len(s.data) {
				return false
			}
			switch s.data[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if len(s.data)-s.i < 5 {
					return false
				}
				for _, h := range s.data[s.i+1 : s.i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				s.i += 5
			default:
				return false
			}
		default:
			s.i++
		}
	}
	return false
}

// number skips a number of the JSON grammar (RFC 8259 §6).
func (s *scanner) number() bool {
	d := s.data
	s.consume('-')
	switch {
	case s.i < len(d) && d[s.i] == '0':
		s.i++
	case s.i < len(d) && d[s.i] >= '1' && d[s.i] <= '9':
		s.digits()
	default:
		return false
	}
	if s.consume('.') {
		if !s.digits() {
			return false
		}
	}
	if s.i < len(d) && (d[s.i] == 'e' || d[s.i] == 'E') {
		s.i++
		if !s.consume('+') {
			s.consume('-')
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits skips one or more digits.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.data) && s.data[s.i] >= '0' && s.data[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}
