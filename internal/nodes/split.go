package nodes

import (
	"encoding/json"
	"unicode/utf8"
)

// splitObject reads a JSON object into its fields without encoding/json: each value is
// a sub-slice of data, not a copy. It handles the plain case (keys without escapes,
// nesting at most splitMaxDepth) and answers ok false for anything else, valid or not,
// which the caller then decodes with encoding/json. Whenever ok is true, json.Unmarshal
// into a map[string]json.RawMessage gives the same map (FuzzSplitObject checks it).
func splitObject(data []byte) (map[string]json.RawMessage, bool) {
	s := splitter{data: data}
	s.space()
	if !s.consume('{') {
		return nil, false
	}
	m := make(map[string]json.RawMessage, 8)
	s.space()
	if s.consume('}') {
		return m, s.end()
	}
	for {
		s.space()
		key, ok := s.plainKey()
		if !ok {
			return nil, false
		}
		s.space()
		if !s.consume(':') {
			return nil, false
		}
		s.space()
		start := s.i
		if !s.value(0) {
			return nil, false
		}
		m[key] = json.RawMessage(data[start:s.i:s.i])
		s.space()
		if s.consume(',') {
			continue
		}
		if s.consume('}') {
			return m, s.end()
		}
		return nil, false
	}
}

// splitMaxDepth bounds the nesting the splitter follows; deeper inputs go to
// encoding/json.
const splitMaxDepth = 32

type splitter struct {
	data []byte
	i    int
}

func (s *splitter) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *splitter) consume(c byte) bool {
	if s.i < len(s.data) && s.data[s.i] == c {
		s.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (s *splitter) end() bool {
	s.space()
	return s.i == len(s.data)
}

// plainKey reads a key of printable ASCII without escapes.
func (s *splitter) plainKey() (string, bool) {
	if !s.consume('"') {
		return "", false
	}
	start := s.i
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch {
		case c == '"':
			key := string(s.data[start:s.i])
			s.i++
			return key, true
		case c < 0x20 || c == '\\' || c >= utf8.RuneSelf:
			return "", false
		}
		s.i++
	}
	return "", false
}

// value skips one valid JSON value.
func (s *splitter) value(depth int) bool {
	if s.i >= len(s.data) || depth > splitMaxDepth {
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

func (s *splitter) literal(lit string) bool {
	if len(s.data)-s.i >= len(lit) && string(s.data[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// str skips a string literal with valid escapes; like encoding/json it lets any byte
// from 0x20 up through.
func (s *splitter) str() bool {
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
func (s *splitter) number() bool {
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
func (s *splitter) digits() bool {
	start := s.i
	for s.i < len(s.data) && s.data[s.i] >= '0' && s.data[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}
