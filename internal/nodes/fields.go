package nodes

// The vocabulary of input fields and output variables. A node version lists the names
// it has; their types and descriptions are declared once here, so the catalog, the
// JSON Schema and the decoder agree.

// fieldKind is how an input field is read and described.
type fieldKind int

const (
	kindString      fieldKind = iota + 1 // a string (a JSON number is taken as the digits of its whole number); surrounding spaces dropped
	kindPathID                           // a kindString that Engage's URL path carries: never "." or "..", none of decisions.go's pathIDForbidden, no control characters, at most MaxPathIDLength
	kindText                             // a string kept exactly as given
	kindStrings                          // a list of strings, or one string of comma-separated values
	kindObject                           // a JSON object or array, or a string holding one
	kindAttachments                      // a list of {mimeType, fileName, fileUrl}
	kindTimestamp                        // RFC 3339 in UTC
	kindChannel                          // a channel, by wire value or display name
	kindDirection                        // inbound, outbound, announcement
	kindMessageType                      // a message type
)

type field struct {
	name string
	kind fieldKind
	desc string
}

var fieldList = []field{
	{"conversationId", kindPathID, "The Engage conversation ID (Engage's URL path carries it): at most 256 characters, not \".\" or \"..\", and without / \\ ? # % ; or control characters."},
	// The catalog names only the channels of each version (Version.fieldDescription).
	{"channel", kindChannel, "The channel, as its wire value (sms, facebook, email, livechat, whatsapp, amb, api) or display name (SMS, Facebook Messenger, Email, Live Chat, WhatsApp, Apple Messages for Business, API), case-insensitive; abc is an alias of amb."},
	{"bizAddress", kindString, "The business address: long or short code (sms), page ID (facebook), business mailbox (email), app ID (livechat), business number (whatsapp), business ID (amb, api)."},
	{"customerAddress", kindString, "The customer address: mobile number (sms), page-scoped ID (facebook), from address (email), user ID (livechat), WhatsApp ID (whatsapp), customer ID (amb, api)."},
	{"customerName", kindString, "The customer's name; when absent the customer address is sent. Not used for email."},
	{"subject", kindText, "The email subject."},
	{"toRecipients", kindStrings, "Email To recipients: a list of addresses, or one string of comma-separated addresses."},
	{"ccRecipients", kindStrings, "Email Cc recipients: a list of addresses, or one string of comma-separated addresses."},
	{"inReplyTo", kindString, "The Message-ID of the email this one replies to."},
	{"threadId", kindString, "The live chat thread ID."},
	{"browserFingerprint", kindString, "The live chat browser fingerprint."},
	{"livechatUserId", kindString, "The live chat user ID (the customer)."},
	{"livechatAppId", kindString, "The live chat app ID (the business)."},
	{"livechatWebsiteDomain", kindString, "The domain of the website the live chat runs on."},
	{"livechatProactiveId", kindString, "The ID of the proactive live chat campaign that started the conversation."},
	{"direction", kindDirection, "The message direction: inbound (from the customer), outbound (to the customer) or, on live chat from Append 1.3 and Create 1.2, announcement."},
	{"messageType", kindMessageType, "The message type; which ones a channel and direction allow depends on the version."},
	{"timestamp", kindTimestamp, "When the message was sent, RFC 3339 in UTC, e.g. 2026-03-01T12:00:00Z."},
	{"text", kindText, "The message text, at most 4096 characters; quotes, backslashes and newlines are sent as written."},
	{"attachments", kindAttachments, "The files of a text-with-attachments message."},
	{"fromAddress", kindString, "The email sender's address."},
	{"emailHeaders", kindObject, "The email's headers, as a JSON object."},
	{"plainBody", kindText, "The email body as plain text."},
	{"htmlBody", kindText, "The email body as HTML."},
	{"strippedHtml", kindText, "The email's HTML body stripped of quoted replies."},
	{"messageAliasId", kindString, "An ID of your own for the message, stored as its alias ID."},
	{"lcFormResponse", kindObject, "The live chat form response (lc-form-response)."},
	{"lcCarouselResponse", kindObject, "The live chat carousel response (lc-carousel-response)."},
	{"lcQuickRepliesResponse", kindObject, "The live chat quick replies response (lc-quick-replies-response)."},
	{"lcCarousel", kindObject, "The live chat carousel (text-with-lc-carousel)."},
	{"lcQuickReplies", kindObject, "The live chat quick replies (text-with-lc-quick-replies)."},
	{"wabButtons", kindObject, "The WhatsApp buttons (wab-buttons)."},
	{"wabList", kindObject, "The WhatsApp list (wab-list)."},
	{"wabInteractiveResponse", kindObject, "The WhatsApp interactive response (wab-interactive-response)."},
	{"ambListPickerResponse", kindObject, "The Apple Messages for Business list picker response (amb-list-picker-response)."},
	{"ambTimePickerResponse", kindObject, "The Apple Messages for Business time picker response (amb-time-picker-response)."},
	{"ambQuickRepliesResponse", kindObject, "The Apple Messages for Business quick replies response (amb-quick-replies-response)."},
	{"ambFormResponse", kindObject, "The Apple Messages for Business form response (amb-form-response)."},
	{"taskId", kindString, "The task ID, written as the conversation's alias ID."},
	{"participant", kindPathID, "The participant's agent ID (Engage's URL path carries it): at most 256 characters, not \".\" or \"..\", and without / \\ ? # % ; or control characters."},
}

var fieldByName = func() map[string]*field {
	m := make(map[string]*field, len(fieldList))
	for i := range fieldList {
		m[fieldList[i].name] = &fieldList[i]
	}
	return m
}()

// outputType is the JSON type of an output variable.
type outputType string

const (
	outString  outputType = "string"
	outBoolean outputType = "boolean"
	outInteger outputType = "integer"
)

type output struct {
	name string
	typ  outputType
	desc string
}

var outputList = []output{
	// Search's; Create describes its own (create_conversation.go).
	{"conversationId", outString, "The ID of the conversation found; empty when none was."},
	{"conversationExistsBool", outBoolean, "Whether a conversation was found."},
	{"status", outString, "The conversation's status as Engage gave it (queued, active, picked, onhold, closed, ...)."},
	{"description", outString, "Engage's description of its answer, a refusal's or failure's too; empty when Engage did not answer."},
	{"aliasId", outString, "The conversation's alias ID."},
	{"teamId", outString, "The team the conversation is assigned to."},
	{"userId", outString, "The agent the conversation is assigned to."},
	{"apiStatus", outInteger, "Engage's HTTP status, a refusal's or failure's too; 0 when Engage did not answer."},
	{"code", outInteger, "Engage's result code, a refusal's or failure's too; 0 when Engage did not answer, or its answer had no readable envelope."},
	{"responsePayload", outString, "Engage's answer, the raw body as a string (JSON, unless something other than Engage answered), a refusal's or failure's too; empty when Engage did not answer."},
	{"TransId", outString, "Engage's transaction ID of the change (its answer's tid); empty on every failure, and when Engage's answer to a change it made carries none."},
	{"transID", outString, "Engage's transaction ID of the change (its answer's tid), spelled as the Update Conversation page spells it; empty on every failure, and when Engage's answer to a change it made carries none."},
}

var outputByName = func() map[string]*output {
	m := make(map[string]*output, len(outputList))
	for i := range outputList {
		m[outputList[i].name] = &outputList[i]
	}
	return m
}()

// zero is the value an output variable has when the execution did not produce it.
func (o *output) zero() any {
	switch o.typ {
	case outBoolean:
		return false
	case outInteger:
		return 0
	}
	return ""
}
