package httpapi

import (
	"bytes"
	"encoding/json"
)

// duplicateKey returns a key that appears twice in one object of data, a valid JSON
// text, and whether there is one. Keys compare as decoded ("\u0063" is "c"). A JSON
// text with a duplicate key means whatever its parser decides (encoding/json takes the
// last value, other parsers the first), so the service refuses it rather than act on a
// reading the caller, or a validator in front of it, may not share.
//
// It allocates nothing for a body of usual size: the keys of the open objects share one
// stack, and only an object of many keys gets a map (so a body of many keys stays
// linear).
func duplicateKey(data []byte) (string, bool) {
	var keyBuf [32][]byte
	var frameBuf [8]keyFrame
	keys, frames := keyBuf[:0], frameBuf[:0]
	expectKey := false
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{':
			frames = append(frames, keyFrame{object: true, start: len(keys)})
			expectKey = true
		case '[':
			frames = append(frames, keyFrame{start: len(keys)})
			expectKey = false
		case '}', ']':
			keys = keys[:frames[len(frames)-1].start]
			frames = frames[:len(frames)-1]
			expectKey = false
		case ',':
			expectKey = len(frames) > 0 && frames[len(frames)-1].object
		case '"':
			end := stringEnd(data, i)
			if expectKey {
				key := data[i+1 : end]
				if bytes.IndexByte(key, '\\') >= 0 {
					var s string
					if json.Unmarshal(data[i:end+1], &s) == nil {
						key = []byte(s)
					}
				}
				f := &frames[len(frames)-1]
				if f.seen(keys[f.start:], key) {
					return string(key), true
				}
				if f.many == nil {
					keys = append(keys, key)
				}
				expectKey = false
			}
			i = end
		}
	}
	return "", false
}

// keyFrame is one open object (or array: object false). Its keys are on the shared
// stack from start on, or in many once there are more than keyFrameLinear.
type keyFrame struct {
	object bool
	start  int
	many   map[string]struct{}
}

const keyFrameLinear = 16

// seen reports whether key is among the object's keys (listed: those on the stack), and
// records it in the map when the object has one or now needs one.
func (f *keyFrame) seen(listed [][]byte, key []byte) bool {
	if f.many != nil {
		if _, dup := f.many[string(key)]; dup {
			return true
		}
		f.many[string(key)] = struct{}{}
		return false
	}
	for _, k := range listed {
		if bytes.Equal(k, key) {
			return true
		}
	}
	if len(listed) >= keyFrameLinear {
		f.many = make(map[string]struct{}, 4*len(listed))
		for _, k := range listed {
			f.many[string(k)] = struct{}{}
		}
		f.many[string(key)] = struct{}{}
	}
	return false
}

// stringEnd returns the index of the quote that closes the string starting at start.
func stringEnd(data []byte, start int) int {
	for j := start + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j
		}
	}
	return len(data) - 1
}
