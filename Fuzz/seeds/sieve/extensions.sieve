require ["fileinto", "variables", "imap4flags", "subaddress", "envelope", "body", "relational", "comparator-i;ascii-numeric",
         "date", "index", "ihave", "environment", "mailbox", "spamtestplus", "regex", "encoded-character", "copy"];
if header :matches "subject" "[*] *" { set :lower :upperfirst "list" "${1}"; addflag "f" "${2}"; }
if address :detail :regex "to" "^(a|b)+$" { fileinto :create :flags "${f}" "x/${list}"; }
if body :content "text" :contains "${hex:41 42}" { setflag "\\Seen"; }
if date :value "ge" :originalzone :index 1 "date" "hour" "09" { keep :flags "$a"; }
if currentdate :zone "+0100" :matches "std11" "*" { set "now" "${0}"; }
if anyof (spamtest :percent :value "ge" :comparator "i;ascii-numeric" "50", environment :is "name" "Tern") { redirect :copy "x@y.example"; }
if ihave "vnd.x" { nothing; } elsif mailboxexists "a" { error "${unicode:263A}"; }
if string :count "gt" :comparator "i;ascii-numeric" ["${list}", ""] "0" { removeflag "\\Seen"; }
