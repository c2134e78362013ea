package engage

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzSearchRequestJSON holds SearchRequest's own encoding to encoding/json's.
func FuzzSearchRequestJSON(f *testing.F) {
	f.Add("sms", "+15550001", "+15559999", "", "", "", "", "", "")
	f.Add("email", "a@b", "c@d", "Re: <x> & \"y\"", "t1", "fp", "to@x", "cc@x\u2028", "\xff")
	f.Add("", "", "", "", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, ch, cust, biz, subj, thread, fp, to, cc, reply string) {
		r := SearchRequest{Channel: ch, CustomerAddress: cust, BizAddress: biz, Subject: subj,
			ThreadID: thread, BrowserFingerprint: fp, InReplyTo: reply}
		if to != "" {
			r.ToRecipients = []string{to, cc}
		}
		if cc != "" {
			r.CcRecipients = []string{cc}
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(&r); err != nil {
			t.Fatal(err)
		}
		if got := r.appendJSON(nil); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("appendJSON %s\nencoding/json %s", got, want.Bytes())
		}
	})
}
