"""Vocabulary for :mod:`batch_ops.testing.ticketgen`.

A topic is (area noun, action). Every action exists in two wordings (``a`` and ``b``) that say the same
thing with different verbs, sentence shapes and title; a planted duplicate is the same topic rendered
with the other wording. Non-duplicates differ in noun or action, so their distinctive words differ.

Placeholders: ``{n}`` noun, ``{ns}`` plural, ``{N}``/``{Ns}`` capitalised, ``{area}``, ``{surface}``,
``{role}``/``{Role}``, ``{k}`` a size or limit, ``{d}`` a number of days.
"""

from __future__ import annotations

from typing import NamedTuple


class Action(NamedTuple):
    kind: str
    key: str
    title_a: str
    title_b: str
    what_a: str
    what_b: str
    acs_a: tuple[str, str]
    acs_b: tuple[str, str]


# (area label, source directory, nouns). Nouns are singular; plurals are derived by `plural()`.
AREAS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("invoicing", "invoices", ("invoice", "line item", "credit note", "invoice template", "draft invoice",
                               "invoice footer", "discount line", "invoice number series", "proforma invoice",
                               "recurring invoice", "invoice attachment")),
    ("payments", "payments", ("payment", "refund", "payout", "card charge", "bank transfer", "payment link",
                              "deposit", "chargeback", "payment plan", "partial payment", "payment receipt",
                              "direct debit mandate")),
    ("customers", "customers", ("customer", "contact person", "billing address", "customer group",
                                "customer tag", "shipping address", "VAT number", "customer statement",
                                "portal invite", "customer segment", "account manager")),
    ("expenses", "expenses", ("expense", "receipt", "mileage entry", "expense category", "per diem",
                              "reimbursement", "supplier bill", "expense report", "card transaction",
                              "expense policy")),
    ("time tracking", "time", ("time entry", "timer", "timesheet", "billable rate", "project budget",
                               "task estimate", "break entry", "overtime rule", "time approval",
                               "lock period")),
    ("projects", "projects", ("project", "milestone", "task list", "project member", "project template",
                              "deliverable", "project phase", "retainer", "kanban column", "project tag")),
    ("catalog", "catalog", ("product", "service item", "price list", "unit of measure", "stock level",
                            "product variant", "bundle", "price tier", "product image", "SKU")),
    ("taxes", "taxes", ("tax rate", "tax exemption", "reverse charge rule", "tax report", "withholding tax",
                        "tax region", "sales tax nexus", "VAT return", "tax category", "tax override")),
    ("reports", "reports", ("profit and loss report", "aged receivables report", "revenue chart",
                            "cash flow forecast", "report schedule", "report filter", "custom report",
                            "KPI tile", "export bundle", "year-end summary")),
    ("banking", "banking", ("bank feed", "bank account", "bank rule", "statement line",
        "reconciliation match",
                            "bank import", "account transfer", "opening balance", "bank connection",
                            "cleared transaction")),
    ("accounting", "ledger", ("journal entry", "chart of accounts", "ledger account", "fiscal year",
                              "closing period", "trial balance", "accrual", "depreciation schedule",
                              "cost center", "intercompany entry")),
    ("quotes", "quotes", ("quote", "estimate", "quote approval", "quote expiry", "optional line",
                          "quote revision", "signed quote", "quote template", "quote conversion",
                          "quote comment")),
    ("subscriptions", "subscriptions", ("subscription plan", "seat", "trial period", "plan upgrade",
                                        "usage meter", "add-on", "cancellation survey", "renewal date",
                                        "coupon", "billing cycle")),
    ("notifications", "notifications", ("email notification", "in-app alert", "digest email",
                                        "notification preference", "push message", "mention",
                                        "unread counter", "alert rule", "notification template",
                                        "quiet hours window")),
    ("documents", "documents", ("document", "folder", "file preview", "e-signature request",
                                "document version", "shared link", "upload quota", "document tag",
                                "scanned letter", "contract scan")),
    ("team", "team", ("team member", "role", "invitation", "user group", "workspace", "seat assignment",
                      "member profile", "team calendar", "absence", "handover note")),
    ("integrations", "integrations", ("integration", "API key", "sync job", "field mapping", "Zapier trigger",
                                      "accounting sync", "import connector", "OAuth app", "sync conflict",
                                      "integration log")),
    ("settings", "settings", ("company profile", "branding theme", "logo", "number format",
                              "language preference", "currency preference", "sender address",
                              "default payment term", "fiscal year setting", "custom domain")),
    ("dashboard", "dashboard", ("dashboard", "widget", "activity feed", "quick action", "revenue tile",
                                "overdue panel", "goal tracker", "onboarding checklist", "shortcut bar",
                                "announcement banner")),
    ("search", "search", ("search index", "search result", "saved search", "search suggestion",
                          "global search bar", "recent search", "search facet", "search ranking",
                          "search highlight", "search scope")),
    ("inventory", "inventory", ("warehouse", "stock movement", "purchase order", "supplier", "stock count",
                                "reorder point", "batch number", "goods receipt", "stock transfer",
                                "backorder")),
    ("mobile", "mobile", ("mobile home screen", "offline queue", "photo capture", "push notification",
                          "biometric unlock", "mobile widget", "app shortcut", "mobile sync", "tablet layout",
                          "mobile walkthrough")),
    ("portal", "portal", ("client portal", "portal invoice view", "portal message", "portal login link",
                          "portal branding", "portal document", "portal checkout page",
                              "portal feedback form",
                          "portal language", "portal access log")),
    ("contracts", "contracts", ("contract", "contract renewal", "contract clause", "contract template",
                                "signature", "contract amendment", "notice period", "contract owner",
                                "contract value", "termination date")),
    ("support", "support", ("support ticket", "help article", "chat widget", "canned reply",
                            "satisfaction survey", "escalation rule", "support queue",
                                "knowledge base category",
                            "feedback vote", "status page incident")),
    ("onboarding", "onboarding", ("sign-up form", "welcome email", "setup wizard", "sample data set",
                                  "product tour", "trial reminder", "activation checklist", "referral invite",
                                  "demo account", "import assistant")),
    ("account billing", "account-billing", ("plan invoice", "payment method", "billing contact",
                                            "usage report", "plan limit", "billing history", "dunning email",
                                            "credit balance", "billing address form", "tax receipt")),
    ("audit", "audit", ("audit entry", "change log", "login history", "data export", "retention policy",
                        "activity report", "deleted item", "admin action", "access review",
                        "compliance report")),
    ("email", "email", ("email template", "outgoing email", "bounce", "email attachment", "sender domain",
                        "email preview", "open tracking pixel", "reply-to address", "email signature",
                        "unsubscribe link")),
    ("workflows", "workflows", ("approval step", "workflow rule", "automation", "trigger condition",
                                "scheduled action", "approval request", "workflow template",
                                    "escalation timer",
                                "workflow run", "conditional branch")),
    ("analytics", "analytics", ("funnel", "cohort", "tracked event", "retention chart", "segment",
                                "attribution report", "dashboard filter", "metric definition",
                                "warehouse export", "anomaly alert")),
    ("pdf", "pdf", ("PDF layout", "page footer", "letterhead", "PDF font", "QR code", "watermark",
                    "page break", "PDF attachment", "print margin", "PDF archive")),
)

# Domain terms per area (same order as AREAS). A ticket mentions two of its area's terms; a reworded
# duplicate keeps them, which is what makes it recognisable beyond its noun.
AREA_TERMS: tuple[tuple[str, ...], ...] = (
    ("due date", "net amount", "invoice number", "tax line", "payment terms", "issue date", "currency code"),
    ("settlement date", "card brand", "processor fee", "captured amount", "remittance note", "payer name"),
    ("legal name", "postal code", "country code", "primary email", "customer number", "credit limit"),
    ("merchant name", "expense date", "receipt image", "reimbursable flag", "spending limit", "cost code"),
    ("start time", "duration", "hourly rate", "billable flag", "week number", "approval state"),
    ("project code", "deadline", "budget cap", "progress percentage", "client owner", "phase name"),
    ("unit price", "stock quantity", "product code", "list price", "weight", "variant label"),
    ("tax percentage", "jurisdiction", "exemption certificate", "filing period", "tax base", "tax code"),
    ("date range", "grouping", "comparison period", "chart type", "totals row", "drill-down link"),
    ("booking date", "counterparty", "statement balance", "reference text", "IBAN", "value date"),
    ("posting date", "debit side", "credit side", "account code", "period lock", "entry memo"),
    ("validity date", "quote total", "acceptance link", "revision number", "discount percentage",
        "terms text"),
    ("renewal price", "seat count", "plan tier", "trial end", "proration", "billing anchor"),
    ("delivery channel", "send time", "subject line", "recipient list", "frequency cap", "snooze option"),
    ("file size", "mime type", "version label", "folder path", "retention date", "preview thumbnail"),
    ("display name", "job title", "permission set", "invite expiry", "manager field", "time zone"),
    ("client secret", "sync interval", "mapping rule", "last sync time", "error count", "external id"),
    ("brand colour", "logo file", "decimal separator", "default language", "base currency", "sender name"),
    ("tile order", "refresh interval", "date window", "goal value", "layout grid", "visibility rule"),
    ("query text", "result rank", "typo tolerance", "facet count", "index freshness", "snippet length"),
    ("bin location", "reorder quantity", "lead time", "supplier code", "lot number", "stock value"),
    ("app version", "device model", "sync status", "battery use", "camera permission", "offline storage"),
    ("portal URL", "access code", "client language", "welcome text", "payment button", "message thread"),
    ("start date", "end date", "renewal term", "contract number", "signatory", "notice days"),
    ("ticket priority", "first response time", "assignee", "satisfaction score", "tag set", "SLA timer"),
    ("company size", "referral source", "trial length", "setup step", "sample records", "activation event"),
    ("card expiry", "plan price", "billing email", "usage units", "overage charge", "invoice PDF"),
    ("actor", "timestamp", "changed fields", "IP address", "retention days", "export format"),
    ("from address", "bounce reason", "open rate", "template variables", "attachment size", "DKIM record"),
    ("trigger event", "condition expression", "approver", "timeout", "run history", "retry count"),
    ("event name", "conversion rate", "cohort week", "sampling rate", "property filter", "metric unit"),
    ("page size", "font family", "margin width", "footer text", "QR payload", "colour profile"),
)

DETAILS: tuple[tuple[str, str], ...] = (
    ("It concerns the {t1} and the {t2} of every {n}.",
     "Both the {t2} and the {t1} of a {n} are involved."),
    ("The {t1} has to stay consistent with the {t2}.",
     "Whatever happens, the {t2} must keep matching the {t1}."),
    ("Users notice it first through the {t1}, then the {t2}.",
     "People spot it in the {t1} before anything else, and later in the {t2}."),
    ("Pay attention to {ns} with an unusual {t1} or a missing {t2}.",
     "Edge cases: a {n} lacking its {t2}, or one whose {t1} is unusual."),
    ("Support tickets about this quote the {t1} and the {t2}.",
     "Customers complaining about it mention the {t2} and the {t1}."),
)

# Facts about a ticket's third domain term; twins state the same fact in the other wording.
FACTS: tuple[tuple[str, str], ...] = (
    ("Today the {n} screens show the {t1}, the {t2} and the {t3}; all three must stay correct.",
     "The {t3}, {t2} and {t1} are what people see on {a_n} today, and none of them may break."),
    ("The {t3} of {a_n} is derived from its {t1}.", "{A_n}'s {t1} determines its {t3}."),
    ("Most {ns} in large accounts have their {t3} set.", "In big accounts, nearly every {n} has its {t3} "
                                                         "filled in."),
    ("Reports group {ns} by their {t3}.", "The {t3} is what reports use to group {ns}."),
    ("Imports fill in the {t3} of {a_n} automatically.", "When {ns} are imported, their {t3} is filled in "
                                                         "for them."),
    ("The {t3} is editable only while {a_n} is a draft.", "Once {a_n} leaves the draft state its {t3} is "
                                                          "locked."),
    ("Sorting by {t3} is the second most used view of {ns}.", "After the default order, people most often "
                                                              "order {ns} by {t3}."),
    ("The {t3} is copied to the PDF and to exports.", "Exports and the PDF both carry the {t3}."),
)

# (wording a, wording b) pairs: the rewording of a duplicate uses the other element.
ROLES: tuple[tuple[str, str], ...] = (
    ("account admins", "administrators of the account"),
    ("bookkeepers", "the accountants who keep the books"),
    ("team members", "everyone on the team"),
    ("new users", "people who just signed up"),
    ("support agents", "our support staff"),
    ("freelancers", "independent contractors"),
    ("agency owners", "people who run an agency"),
    ("finance managers", "heads of finance"),
    ("view-only users", "members with read access"),
    ("power users", "our heaviest users"),
    ("enterprise customers", "customers on the Enterprise plan"),
    ("accountants", "the external accounting firms"),
)

SURFACES: tuple[tuple[str, str], ...] = (
    ("web app", "browser version"),
    ("mobile app", "phone app"),
    ("public API", "REST API"),
    ("admin console", "back-office console"),
    ("customer portal", "client-facing portal"),
    ("settings page", "account settings screen"),
)

# Customers who report things. Name stems are single distinctive tokens; a duplicate usually comes from
# the same customer, so a twin mentions the same one when its original does.
_STEMS_A = ("Nor", "Bel", "Kast", "Vel", "Tor", "Mar", "Lind", "Hal", "Brun", "Ost", "Dal", "Fern", "Gal",
            "Hex", "Ivo", "Jor", "Kel", "Lum", "Mon", "Ner", "Orb", "Pell", "Quin", "Ros", "Sol", "Tam",
            "Ulm", "Var", "Wen", "Yar", "Zel", "Ash", "Birk", "Cor", "Dun")
_STEMS_B = ("wick", "dale", "ford", "mont", "ridge", "haven", "stone", "field", "brook", "well", "worth",
            "by", "ton", "holm", "mere", "gate", "croft", "shaw")
_COMPANY_KINDS = ("Studio", "GmbH", "Ltd", "and Partners", "Design", "Consulting", "Dental", "Logistics",
                  "Bakery", "Architects", "Media", "Legal", "Clinic", "Labs")
COMPANIES: tuple[str, ...] = tuple(f"{a}{b} {k}" for a in _STEMS_A for b in _STEMS_B
                                   for k in _COMPANY_KINDS[(len(a) + len(b)) % 7::7])
MENTIONS: tuple[str, str] = ("{company} brought this up first.", "{company} asked about it as well.")

REASONS: tuple[tuple[str, str], ...] = (
    ("{Role} asked for this in {d} support conversations last quarter.",
     "Support logged {d} requests for it from {role} over the last three months."),
    ("It is the most upvoted request on the public roadmap for {area}.",
     "On the roadmap board, nothing in {area} has more votes than this."),
    ("Competitors already offer it and sales lost two deals over it.",
     "Two prospects chose another vendor partly because we lack this."),
    ("Churn interviews mention the gap in the {area} area repeatedly.",
     "Customers who cancelled kept bringing up this shortcoming of {area}."),
    ("The current behaviour forces {role} into a spreadsheet workaround.",
     "Today {role} work around it by copying data into a spreadsheet."),
    ("It came up in the last usability study: {d} of 12 participants got stuck here.",
     "In usability testing, {d} out of twelve people stalled at exactly this point."),
    ("Customer success flagged it as a blocker for the {area} rollout at larger accounts.",
     "Larger accounts are holding back on {area} until this is addressed, says customer success."),
    ("The on-call rotation spent {d} hours on related tickets last month.",
     "Last month, people on call lost about {d} hours to tickets about this."),
    ("Product analytics show {d}% of sessions in {area} hit this path.",
     "About {d} percent of {area} sessions go through this flow, per our analytics."),
    ("Partners building on our {surface} keep requesting it.",
     "Integration partners using the {surface} bring it up in every sync."),
    ("It was promised in the Q1 release notes for {area}.",
     "The Q1 release notes for {area} already announce it."),
    ("Finance asked for it ahead of the annual audit.",
     "With the yearly audit coming, the finance team wants this in place."),
)

CONSTRAINTS: tuple[tuple[str, str], ...] = (
    ("Keep the change behind a feature flag until the rollout review.",
     "Ship it dark, behind a toggle, and enable it after the rollout review."),
    ("It must work for accounts with up to {k} {ns}.",
     "Accounts holding as many as {k} {ns} must not be left out."),
    ("Existing data must not change; only new behaviour is added.",
     "Nothing already stored may be altered by this; it only adds behaviour."),
    ("The {surface} and the mobile app must behave the same way.",
     "Behaviour has to match between the mobile app and the {surface}."),
    ("Response times on the {area} pages must stay under 300 ms.",
     "The {area} screens have to keep answering within 300 milliseconds."),
    ("Copy must be reviewed by the docs team before release.",
     "The wording needs a pass from the documentation team before it ships."),
    ("No new third-party dependency unless it is already approved.",
     "Stick to libraries that are already on the approved list."),
    ("Accessibility: everything must be reachable with the keyboard and labelled for screen readers.",
     "Keyboard-only and screen-reader users must be able to use all of it."),
    ("Limit the first version to the {surface}; other surfaces follow later.",
     "Start with just the {surface}; the rest can come in a later iteration."),
    ("Log each use so we can measure adoption after {d} days.",
     "Record every use, so adoption can be checked {d} days after launch."),
)

NOTES: tuple[tuple[str, str], ...] = (
    ("Reuse the existing list component; it already supports selection.",
     "The shared list component handles selection already, so build on it."),
    ("Check how the {area} store caches {ns} before adding another query.",
     "Look at the caching of {ns} in the {area} store before querying again."),
    ("The API layer already exposes most of what is needed.",
     "Most of the data is available from existing API endpoints."),
    ("Coordinate with the mobile team; they share the view models.",
     "The mobile team shares these view models, so agree on changes with them."),
    ("Write the migration of old records as a separate step if one is needed.",
     "If old records need updating, do it in its own step."),
    ("Follow the pattern used in the projects module.",
     "The projects module has a similar pattern worth copying."),
    ("Add an entry to the changelog.", "Mention it in the changelog."),
    ("The {t1} is computed in one helper; change it there, not in the views.",
     "Only one helper derives the {t1}; edit that instead of the views."),
    ("Ask design for the empty and error states.", "Design should provide the empty and error states."),
)

TEST_LINES: tuple[str, ...] = (
    "- Unit: the new logic for {ns}, including an empty list and the {k}-item limit.",
    "- Component: rendering in the {surface} with fixture {ns}.",
    "- Integration: API round trip for {ns} against the test database.",
    "- End-to-end: the main flow in a browser with a seeded account.",
    "- Regression: the scenario from the original report, as a failing test first.",
    "- Property-based: random {ns} never break the invariant.",
)

AUTHORS: tuple[str, ...] = (
    "maria.k", "jonas.p", "lena.w", "tom.r", "dana.o", "priya.s", "omar.h", "yuki.t", "felix.b", "ana.c",
    "product-team", "support-bot", "sec-team", "finance-eng",
)

A = Action
ACTIONS: tuple[Action, ...] = (
    # ---- features
    A("FEAT", "export-csv", "Export {ns} as CSV", "Download the {n} list to a spreadsheet",
      "Let {role} export the {ns} shown in the {surface} as a CSV file, one row per {n}, keeping the "
      "active filters.",
      "From the {surface}, {role} should be able to save the list of {ns} they are looking at as a "
      "spreadsheet file, limited to what the current filters show.",
      ("The CSV contains exactly the {ns} that match the active filters.",
       "Fields containing commas or quotes are quoted per RFC 4180."),
      ("Only {ns} visible under the current filters end up in the downloaded file.",
       "A {n} whose name contains a comma opens correctly in a spreadsheet.")),
    A("FEAT", "bulk-edit", "Bulk edit selected {ns}", "Change many {ns} at once",
      "Add a bulk edit action to the {n} list in the {surface}: select up to {k} {ns} and set a shared "
      "field in one step.",
      "{Role} should be able to tick several {ns}, at most {k}, and update the same field on all of them "
      "together instead of opening each one.",
      ("Selecting {ns} and choosing a new value updates every selected {n}.",
       "Selections above {k} {ns} are refused with a message naming the limit."),
      ("After the update, all ticked {ns} carry the new value.",
       "Trying to change more than {k} {ns} together explains the maximum.")),
    A("FEAT", "history", "Show change history for each {n}", "Keep a timeline of edits made to a {n}",
      "Record every change to a {n} (who, when, old and new value) and show it as a history tab in the "
      "{surface}.",
      "Whenever someone modifies a {n}, store the author, the time and the before and after values, and let "
      "{role} browse that timeline.",
      ("Each edit to a {n} appears in its history with author, time and both values.",
       "The history tab lists the newest change first."),
      ("The timeline of a {n} shows who changed what and when.",
       "Entries are ordered from most recent to oldest.")),
    A("FEAT", "saved-filters", "Saved filters for the {n} list", "Let users store their favourite {n} list "
                                                                 "views",
      "Allow {role} to save the current filter and sort of the {n} list under a name and reapply it later.",
      "{Role} want to name a combination of filters on {ns} and come back to exactly that view in one click.",
      ("A saved filter restores the same {ns} and sort order.",
       "Saved filters can be renamed and deleted."),
      ("Picking a stored view brings back the identical list of {ns}.",
       "Stored views may be given a new name or removed.")),
    A("FEAT", "search", "Full-text search across {ns}", "Find {ns} by typing any word they contain",
      "Add a search box to the {n} list that matches any word in the name, notes and reference of a {n}.",
      "Typing a word that appears anywhere in a {n} (its name, its notes, its reference) should bring it up "
      "in the list.",
      ("Searching a word from a {n}'s notes finds that {n}.",
       "Results appear within 500 ms for accounts with {k} {ns}."),
      ("A word that only occurs in the notes is enough to locate a {n}.",
       "With {k} {ns} in the account, results still show up in half a second.")),
    A("FEAT", "archive", "Archive old {ns}", "Hide {ns} nobody uses any more without deleting them",
      "Add an archive action for {ns}; archived {ns} leave the default list but stay searchable and "
      "restorable.",
      "{Role} want unused {ns} out of the way while keeping them around, with the option to bring them back.",
      ("Archived {ns} are hidden from the default list.",
       "An archived {n} can be restored from the archive filter."),
      ("A {n} put away no longer shows in the normal view.",
       "Putting a {n} back returns it to the normal view.")),
    A("FEAT", "import-csv", "Import {ns} from a CSV file", "Upload a spreadsheet to create {ns} in one go",
      "Let {role} upload a CSV to create up to {k} {ns}, with a preview that flags invalid rows before "
      "importing.",
      "Creating {ns} one at a time is slow; {role} should be able to upload a spreadsheet of up to {k} rows, "
      "review problems first, then create them all.",
      ("A valid CSV creates one {n} per row.",
       "Invalid rows are listed in the preview with the reason and are not imported."),
      ("Every row of a correct upload turns into a {n}.",
       "Rows with problems are shown before creation, with an explanation, and skipped.")),
    A("FEAT", "keyboard", "Keyboard navigation in the {n} list", "Move through {ns} without a mouse",
      "Support arrow keys, Enter to open and Escape to close in the {n} list of the {surface}.",
      "{Role} who live on the keyboard should be able to go up and down the {ns}, open one and go back, "
      "without touching the mouse.",
      ("Up and down arrows move the selection between {ns}.",
       "Enter opens the selected {n}; Escape returns to the list."),
      ("The selection follows the arrow keys through the {ns}.",
       "Opening and closing a {n} works with Enter and Escape.")),
    A("FEAT", "custom-fields", "Custom fields on {ns}", "Let accounts add their own attributes to a {n}",
      "Allow account admins to define up to {k} custom fields (text, number, date) that appear on every {n}.",
      "Each account has information about a {n} that we do not model; let them add extra attributes of type "
      "text, number or date, {k} at most.",
      ("A custom field defined in settings appears on each {n}.",
       "Custom field values can be used as list filters."),
      ("Extra attributes configured once show up on all {ns}.",
       "The {n} list can be filtered by an extra attribute.")),
    A("FEAT", "reminders", "Email reminder when a {n} needs attention",
      "Notify the owner by mail if a {n} is waiting on them",
      "Send the owner an email when a {n} has waited {d} days for their action, at most once per day.",
      "If a {n} sits untouched for {d} days while it depends on someone, that person should get a mail about "
      "it, but never more than one a day.",
      ("A {n} idle for {d} days triggers one email to its owner.",
       "No owner receives more than one reminder per day."),
      ("After {d} days without action the owner is mailed about the {n}.",
       "Reminders are capped at one per person per day.")),
    A("FEAT", "comments", "Internal comments on a {n}", "Let colleagues discuss a {n} in a private thread",
      "Add a comment thread to each {n}, visible only to team members, with mentions that notify colleagues.",
      "Colleagues need to talk about a {n} without email; add a discussion visible inside the team where "
      "@-mentioning someone alerts them.",
      ("Comments on a {n} are visible to team members only.",
       "Mentioning a colleague notifies them."),
      ("People outside the team never see the discussion of a {n}.",
       "An @-mention sends the mentioned person an alert.")),
    A("FEAT", "outgoing-events", "Outgoing event when a {n} changes",
      "Notify integrations through a callback on {n} updates",
      "Post a signed JSON event to the account's callback URL whenever a {n} is created, updated or removed.",
      "Integrations want to hear about {n} updates instead of polling; call the configured URL with a JSON "
      "body for every creation, change and removal.",
      ("Creating, updating or removing a {n} sends one event to the callback URL.",
       "Failed deliveries are retried {d} times with backoff."),
      ("Every change to a {n} reaches the configured endpoint once.",
       "A delivery that fails is attempted again up to {d} times.")),
    A("FEAT", "pdf-view", "Printable PDF view of a {n}", "Download a {n} as a print-ready document",
      "Add a PDF download for a single {n} using the account branding, A4 and Letter sizes.",
      "{Role} need to hand a {n} to someone on paper; offer a document download that carries the account's "
      "branding and fits A4 or Letter.",
      ("The PDF of a {n} uses the account logo and colours.",
       "Both A4 and Letter page sizes are supported."),
      ("The downloaded document shows the account branding.",
       "Printing works on A4 and on Letter paper.")),
    A("FEAT", "dashboard-card", "Dashboard card summarising {ns}", "Put a {n} overview tile on the home "
                                                                   "screen",
      "Add a dashboard card with the number of {ns}, the change over the last {d} days and a link to the "
      "list.",
      "The home screen should show at a glance how many {ns} there are and how that moved in {d} days, "
      "with a way to jump to them.",
      ("The card shows the current count of {ns} and the {d}-day change.",
       "Clicking the card opens the {n} list."),
      ("The tile displays the total and its movement over {d} days.",
       "The tile links through to the full list of {ns}.")),
    A("FEAT", "sortable", "Sortable columns in the {n} table", "Order the {n} table by clicking a column "
                                                               "header",
      "Make every column of the {n} table sortable, ascending and descending, remembered per user.",
      "Clicking a header of the {ns} table should order the rows by it, a second click reverses, and the "
      "choice sticks for that person.",
      ("Each column header sorts the {ns} ascending, then descending.",
       "The chosen sort survives a reload."),
      ("Rows are ordered by the clicked header, reversed on a second click.",
       "After refreshing, the same ordering is applied.")),
    A("FEAT", "tags", "Tags for organising {ns}", "Label {ns} with free-form keywords",
      "Allow adding free-text tags to {ns}, with autocomplete of existing tags and a tag filter in the list.",
      "{Role} want to group {ns} their own way: attach arbitrary keywords, pick from keywords already used, "
      "and narrow the list by keyword.",
      ("A {n} can carry several tags, suggested as you type.",
       "The list can be filtered by one or more tags."),
      ("Keywords already in use are offered while typing on a {n}.",
       "Narrowing the list by keyword shows only matching {ns}.")),
    A("FEAT", "undo", "Undo the last change to a {n}", "Let people revert an accidental {n} edit",
      "After saving a {n}, show an Undo toast for 10 seconds that restores the previous version.",
      "Mistakes happen when editing a {n}; for ten seconds after saving, offer a way to go back to how it "
      "was.",
      ("Undo within 10 seconds restores the previous version of the {n}.",
       "Undo is not offered after the 10 seconds have passed."),
      ("Reverting right after saving brings the {n} back to its prior state.",
       "Once the ten seconds are over, reverting is no longer possible.")),
    A("FEAT", "templates", "Reusable templates for new {ns}", "Start a {n} from a saved blueprint",
      "Let {role} save a {n} as a template and create new {ns} prefilled from it.",
      "Many {ns} look alike; {role} should be able to keep one as a blueprint and base new ones on it.",
      ("Saving a {n} as a template makes it available when creating a new one.",
       "A {n} created from a template copies all template fields."),
      ("Any {n} can be kept as a blueprint for later.",
       "New {ns} based on a blueprint start with its values.")),
    A("FEAT", "localise", "Translate {n} screens into German and French", "Localise the {n} pages for DE "
                                                                          "and FR",
      "Move every string of the {n} screens into the translation catalogue and add German and French.",
      "The pages about {ns} are English-only; put their texts in the message catalogue and provide DE and FR "
      "versions.",
      ("With language German or French, no English string remains on the {n} screens.",
       "Dates and numbers on those screens follow the chosen language."),
      ("Switching to DE or FR translates every text on the {n} pages.",
       "Number and date formats change along with the language.")),
    A("FEAT", "responsive", "Responsive layout for the {n} screens", "Make {n} pages usable on a phone",
      "Rework the {n} list and detail screens so they work from 360 px wide without horizontal scrolling.",
      "On a phone the {n} pages are unusable; they should fit a 360-pixel screen and never need sideways "
      "scrolling.",
      ("At 360 px width the {n} list needs no horizontal scroll.",
       "All actions on a {n} remain reachable on a phone."),
      ("A narrow phone screen shows the {ns} without sideways scrolling.",
       "Every {n} action can still be triggered on mobile.")),
    A("FEAT", "reorder", "Reorder {ns} by drag and drop", "Let users rearrange {ns} by dragging them",
      "Allow changing the order of {ns} by dragging rows; the order is saved and shared with the team.",
      "The position of {ns} matters to {role}; let them drag a row to a new place and keep that order for "
      "everyone.",
      ("Dragging a {n} to a new position saves the new order.",
       "Other team members see the same order."),
      ("The sequence of {ns} changes when a row is dropped elsewhere.",
       "Colleagues get the rearranged sequence too.")),
    A("FEAT", "pin", "Pin favourite {ns} to the top", "Keep frequently used {ns} at the head of the list",
      "Let each user pin up to {k} {ns}; pinned ones appear first in every list view.",
      "{Role} keep returning to a handful of {ns}; allow marking up to {k} of them so they always come "
      "first.",
      ("A pinned {n} is listed before all unpinned ones.",
       "Pinning more than {k} {ns} shows the limit."),
      ("Marked {ns} lead the list for that person.",
       "The {k}-item maximum is explained when exceeded.")),
    A("FEAT", "digest", "Weekly emailed report of {ns}", "Send a Monday digest listing {ns}",
      "Email subscribed users every Monday a summary of {ns} created and changed in the past week.",
      "Once a week, on Monday morning, people who opted in should receive a mail listing new and modified "
      "{ns} from the previous seven days.",
      ("Subscribers receive one email per week listing last week's {ns}.",
       "Users can unsubscribe from the report in one click."),
      ("The Monday mail covers {ns} from the last seven days.",
       "Opting out of the digest takes a single click.")),
    A("FEAT", "api-list", "List and filter {ns} through the public API", "Expose {n} queries to API clients",
      "Add a paginated list endpoint for {ns} to the public API with filters on status and date.",
      "API clients should be able to fetch {ns} page by page and narrow them by status and by date, like "
      "the web list does.",
      ("The endpoint returns {ns} in pages of at most 100.",
       "Status and date filters give the same results as the web list."),
      ("Clients get {ns} in pages no larger than 100 items.",
       "Filtering by status and date matches the web list.")),
    A("FEAT", "empty-state", "Helpful empty state for the {n} list",
      "Guide new users when they have no {ns} yet",
      "Replace the blank {n} list of new accounts with an explanation, a create button and a link to the "
      "docs.",
      "People who just signed up see an empty page where {ns} would be; tell them what {ns} are for and how "
      "to make their first one.",
      ("An account without {ns} sees an explanation and a create button.",
       "The empty state disappears once the first {n} exists."),
      ("With zero {ns}, the page explains them and offers to create one.",
       "After the first {n} is added, the normal list shows.")),
    A("FEAT", "inline-edit", "Edit {n} fields inline in the table", "Change a {n} without opening its "
                                                                    "detail page",
      "Let {role} edit the main fields of a {n} directly in the table row, saving on blur.",
      "Opening a {n} to change one value is tedious; the table cells themselves should be editable and save "
      "when focus leaves.",
      ("Editing a cell updates the {n} when focus leaves it.",
       "Invalid input keeps the old value and shows why."),
      ("Leaving an edited cell stores the change to the {n}.",
       "A wrong value is rejected with an explanation and not saved.")),
    A("FEAT", "attachments", "Attach files to a {n}", "Upload supporting documents alongside a {n}",
      "Allow up to {k} attachments per {n} (PDF, images, up to 10 MB each) with previews.",
      "{Role} need to keep files next to a {n}; let them upload documents and pictures, {k} per {n} at most, "
      "and preview them.",
      ("A PDF or image up to 10 MB can be attached to a {n}.",
       "The {k}-file limit per {n} is enforced."),
      ("Supported files under 10 MB upload and preview on the {n}.",
       "Uploads beyond {k} files are refused.")),
    A("FEAT", "compare", "Compare two versions of a {n}", "Show a side-by-side diff between {n} revisions",
      "In the history of a {n}, let {role} pick two versions and see the differing fields highlighted.",
      "When a {n} changed several times, {role} want to put two revisions next to each other with the "
      "differences marked.",
      ("Selecting two versions of a {n} highlights changed fields.",
       "Unchanged fields are collapsed."),
      ("Two chosen revisions appear side by side with differences marked.",
       "Fields that did not change are folded away.")),
    A("FEAT", "notif-prefs", "Per-user notification settings for {ns}",
      "Let each person choose which {n} alerts they get",
      "Add per-user settings to turn email and in-app notifications about {ns} on or off by event type.",
      "Not everyone wants to hear about every {n}; each person should decide, per kind of event, whether "
      "they get an email, an in-app alert, or nothing.",
      ("A user who turns off {n} emails receives none.",
       "Settings are per user and per event type."),
      ("Switching off mails about {ns} stops them for that person.",
       "Each event kind can be configured separately by each person.")),
    A("FEAT", "calendar", "Calendar view of {ns}", "Lay out {ns} on a month grid by date",
      "Add a month calendar that shows {ns} on their due date, with drag to reschedule.",
      "{Role} think about {ns} by date; show them on a monthly grid and let them move one to another day by "
      "dragging.",
      ("Each {n} appears on its date in the calendar.",
       "Dragging a {n} to another day changes its date."),
      ("The monthly grid places {ns} on the right day.",
       "Moving a {n} to a different day reschedules it.")),
    A("FEAT", "share-link", "Share a read-only link to a {n}",
      "Send someone outside the account a view-only {n} page",
      "Generate an expiring read-only link to a {n} that works without an account, revocable at any time.",
      "People outside the account sometimes need to look at a {n}; create a view-only address that expires "
      "and can be withdrawn.",
      ("The link shows the {n} without signing in and allows no changes.",
       "A revoked or expired link shows an error page."),
      ("Visitors with the address can view but not edit the {n}.",
       "After withdrawal or expiry the address stops working.")),
    A("FEAT", "bulk-delete", "Bulk delete {ns} with confirmation", "Remove many {ns} at once after a "
                                                                   "confirm step",
      "Allow selecting several {ns} and deleting them together after typing the number of items to confirm.",
      "Cleaning up {ns} one by one takes forever; let {role} select many and remove them in one go, with a "
      "confirmation step to avoid accidents.",
      ("Confirmed bulk deletion removes all selected {ns}.",
       "Without confirmation nothing is deleted."),
      ("All chosen {ns} disappear once the removal is confirmed.",
       "Cancelling the confirmation keeps every {n}.")),
    A("FEAT", "quick-create", "Quick-create a {n} from the command palette",
      "Add a {n} from anywhere with the Ctrl+K menu",
      "Register a 'New {n}' command in the command palette that opens a minimal creation form.",
      "{Role} should be able to press Ctrl+K on any page, type the name of the action and make a {n} in a "
      "small form.",
      ("The command palette offers 'New {n}' on every page.",
       "The minimal form creates a valid {n}."),
      ("Ctrl+K followed by the action name starts a new {n} anywhere.",
       "Submitting the small form results in a proper {n}.")),
    A("FEAT", "usage-stats", "Usage statistics for {ns}", "Count how often each {n} is used",
      "Show for each {n} how many times it was used in the last {d} days, and sort the list by it.",
      "{Role} want to see which {ns} matter: display a usage count over {d} days on each and allow ordering "
      "by that number.",
      ("Each {n} shows its usage count for the last {d} days.",
       "The list can be sorted by usage."),
      ("A {d}-day usage figure is visible on every {n}.",
       "Ordering the list by that figure works.")),
    A("FEAT", "merge", "Merge two {ns} into one", "Combine a pair of overlapping {ns}",
      "Let {role} pick two {ns}, choose which values to keep, and merge them, moving all references.",
      "Sometimes two {ns} really are one; {role} should select both, decide field by field what survives, "
      "and end up with a single record that everything points to.",
      ("After merging, only one {n} remains and all references point to it.",
       "The user chooses the surviving value for each differing field."),
      ("A merged pair leaves one {n} that keeps every reference.",
       "For each conflicting field the user decides which value stays.")),
    A("FEAT", "defaults", "Configurable defaults for new {ns}", "Prefill new {ns} with account-level presets",
      "Add account settings for the default values used when creating a {n}.",
      "Account admins want to decide once what a fresh {n} starts with, instead of everybody changing the "
      "same fields each time.",
      ("A new {n} starts with the account's configured defaults.",
       "Changing a default does not alter existing {ns}."),
      ("Fresh {ns} take their initial values from the account presets.",
       "Already existing {ns} keep their values when presets change.")),
    # ---- bugs
    A("BUG", "pagination", "{Ns} list skips items between pages",
      "Some {ns} never appear when paging through the list",
      "When paging through more than {k} {ns}, items created meanwhile shift the offset and some {ns} are "
      "never shown. Expected: every {n} appears exactly once.",
      "Going from page to page in the {n} list, a few entries are missing and others repeat, because new "
      "{ns} arriving push the offsets along. Each {n} should be seen once.",
      ("Paging through {k} {ns} while new ones are created shows each {n} once.",
       "A regression test covers concurrent inserts during paging."),
      ("No {n} is skipped or repeated when the list grows during paging.",
       "The scenario is reproduced in an automated test.")),
    A("BUG", "timezone", "{N} dates shift by a day in western time zones",
      "Wrong day shown for {ns} to users west of UTC",
      "Dates of a {n} are stored as calendar days but parsed as UTC midnight, so users in the Americas see "
      "the previous day.",
      "Anyone west of Greenwich sees the day before on a {n}: the stored day becomes a UTC timestamp and is "
      "then formatted in local time.",
      ("A {n} dated the 15th shows the 15th in every time zone.",
       "Tests run with TZ set to America/Los_Angeles and Asia/Tokyo."),
      ("The calendar day of a {n} is the same for viewers everywhere.",
       "The date tests pass in both a US and an Asian time zone.")),
    A("BUG", "slow", "{N} page takes over {k} ms to load", "Opening a {n} is painfully slow for large "
                                                           "accounts",
      "For accounts with many {ns}, the detail page issues one query per related record and takes over {k} "
      "ms.",
      "Large accounts wait more than {k} milliseconds when they open a {n}; the page loads related records "
      "one query at a time.",
      ("The {n} page loads in under 300 ms for the largest test account.",
       "The number of queries per page load is constant."),
      ("Big accounts see a {n} within 300 ms.",
       "Query count no longer grows with the number of related records.")),
    A("BUG", "lost-edit", "Edits to a {n} lost when saving twice quickly",
      "Double-clicking save on a {n} discards changes",
      "Two quick saves of a {n} race; the second request carries stale data and overwrites the first.",
      "If someone clicks save twice in a row on a {n}, the later request wins with outdated content and the "
      "edit disappears.",
      ("Saving a {n} twice in quick succession keeps the latest edit.",
       "Concurrent saves are detected with a version check."),
      ("A rapid double save never throws away the change.",
       "A version number rejects the stale request.")),
    A("BUG", "sort", "{Ns} sorted alphabetically instead of by date", "Date column ordering broken for {ns}",
      "Sorting the {n} list by date compares the formatted strings, so '10 Jan' comes before '2 Jan'.",
      "Ordering {ns} by the date column uses the displayed text rather than the actual date, which puts the "
      "10th ahead of the 2nd.",
      ("Sorting by date orders {ns} chronologically.",
       "Sorting works the same in every display language."),
      ("The date column puts {ns} in time order.",
       "Every locale gets the same chronological order.")),
    A("BUG", "encoding", "Non-ASCII characters garbled in {n} names",
      "Accented letters in a {n} come out as question marks",
      "Names of a {n} containing characters such as é or ß are shown as '?' after saving through the "
      "{surface}.",
      "When a {n} is saved via the {surface}, letters like é or ß turn into question marks.",
      ("A {n} named with accented letters keeps them after saving.",
       "Exports and PDFs show the same characters."),
      ("Special letters in a {n} survive the round trip.",
       "Downloads and printouts show them correctly too.")),
    A("BUG", "counter", "{N} counter in the sidebar is off by one", "Sidebar badge shows one more {n} than "
                                                                    "exists",
      "The sidebar count of {ns} includes deleted items until the next reload.",
      "After removing a {n}, the number in the sidebar stays one too high until the page is refreshed.",
      ("The sidebar count equals the number of {ns} in the list.",
       "Deleting a {n} updates the count immediately."),
      ("The badge always matches the list length.",
       "Removing a {n} lowers the badge right away.")),
    A("BUG", "filter-reset", "{N} filters reset after opening a detail page",
      "Going back to the {n} list forgets the chosen filters",
      "Opening a {n} and pressing Back loses the list filters, because they are not kept in the URL.",
      "The filters of the {n} list vanish when someone looks at one {n} and then returns, since nothing "
      "stores them in the address.",
      ("Returning from a {n} restores the previous filters.",
       "Filters are part of the URL and can be bookmarked."),
      ("The list of {ns} keeps its filters across navigation.",
       "A bookmarked address reproduces the filtered list.")),
    A("BUG", "overflow", "{N} table overflows the screen on phones", "Horizontal scroll missing from the "
                                                                     "{n} grid on mobile",
      "On screens narrower than 400 px, the {n} table is cut off and its last columns cannot be reached.",
      "Using a phone, the right side of the {ns} grid is clipped and there is no way to scroll to it.",
      ("On a 360 px screen all columns of the {n} table can be reached.",
       "Desktop layout is unchanged."),
      ("Phone users can scroll to every column of the {ns} grid.",
       "Large screens look exactly as before.")),
    A("BUG", "no-notification", "No notification sent when a {n} is updated",
      "Owners never get told about changes to their {ns}",
      "The notification job skips {ns} updated through the {surface}, so owners are not informed.",
      "Changes made to a {n} via the {surface} do not reach its owner: the notifier ignores that path.",
      ("Updating a {n} via the {surface} notifies its owner.",
       "Exactly one notification is sent per update."),
      ("The owner hears about every change to the {n}.",
       "One update results in one notification.")),
    A("BUG", "empty-export", "Export of {ns} produces an empty file",
      "Downloaded {n} spreadsheet has only the header row",
      "Exporting {ns} with a date filter set returns only the header row, because the filter is applied "
      "twice.",
      "With a date range selected, the downloaded file of {ns} contains no data rows; the range gets applied "
      "a second time on already filtered results.",
      ("Exporting with a date filter contains the filtered {ns}.",
       "A regression test covers export with each filter."),
      ("The download includes all {ns} in the chosen range.",
       "Every filter is exercised by an export test.")),
    A("BUG", "rounding", "Totals on {ns} off by a cent", "Rounding error in {n} sums",
      "Amounts on a {n} are rounded per row and again on the total, so totals differ by one cent.",
      "A {n} total can be a cent away from the sum of its rows, because rounding happens on each row and "
      "then once more on the sum.",
      ("The total of a {n} equals the sum of its rounded rows.",
       "A property test over random amounts finds no difference."),
      ("Row amounts and the {n} total always agree to the cent.",
       "Randomised tests confirm the totals.")),
    A("BUG", "case-search", "{N} search is case-sensitive",
      "Searching {ns} misses matches with different capitalisation",
      "Searching for a {n} only finds exact-case matches; 'acme' does not find 'ACME'.",
      "Lowercase queries miss {ns} written in capitals, and the other way round.",
      ("Search finds a {n} regardless of letter case.",
       "Accents are still matched exactly."),
      ("Capitalisation no longer matters when searching {ns}.",
       "Accented letters keep being distinguished.")),
    A("BUG", "stale-cache", "{N} changes not visible until a hard refresh",
      "Browser keeps showing the old {n} after an edit",
      "After editing a {n}, the list shows the old values because the response is cached without "
      "revalidation.",
      "People change a {n} and still see the previous content in the list, since the cached response is "
      "reused without checking.",
      ("An edited {n} shows its new values in the list right away.",
       "Cache headers on the {n} endpoint require revalidation."),
      ("The list reflects a change to a {n} without a forced reload.",
       "The {n} responses are revalidated before reuse.")),
    A("BUG", "orphan-owner", "Crash when a {n} has no owner", "Error page for {ns} whose owner was deleted",
      "Opening a {n} whose owner was removed from the team raises a null reference and shows the error page.",
      "If the person who owned a {n} left the team, opening it fails with a generic error screen.",
      ("A {n} without an owner opens and shows 'No owner'.",
       "Ownerless {ns} can be reassigned."),
      ("Opening a {n} whose owner is gone works and says so.",
       "Such a {n} can be given a new owner.")),
    A("BUG", "double-submit", "Pressing Enter twice creates two {ns}", "Double form submission makes a "
                                                                       "second {n}",
      "The create form for {ns} stays enabled while the request is in flight, so a second Enter creates "
      "another.",
      "Hitting Enter a second time before the first save returns results in an extra {n}; the form is not "
      "locked during submission.",
      ("Submitting the form twice quickly creates a single {n}.",
       "The submit button is disabled while saving."),
      ("A repeated Enter press yields just one {n}.",
       "The form cannot be submitted again until the first save finishes.")),
    A("BUG", "pdf-overlap", "Long {n} names overlap in the PDF", "Text runs over neighbouring fields on "
                                                                 "printed {ns}",
      "In the PDF, a {n} name longer than 60 characters runs into the next column instead of wrapping.",
      "Printed {ns} with long names have text spilling over the field next to it rather than breaking onto a "
      "second line.",
      ("Long {n} names wrap within their column in the PDF.",
       "A snapshot test covers a 120-character name."),
      ("Names of any length stay inside their field on paper.",
       "A very long name is part of the snapshot tests.")),
    A("BUG", "import-abort", "CSV import of {ns} stops at the first bad row",
      "One malformed line aborts the whole {n} upload",
      "Importing {ns} from CSV aborts on the first invalid row and creates nothing, with no row number in "
      "the error.",
      "A single broken line in an uploaded spreadsheet of {ns} cancels everything, and the error does not "
      "say which line.",
      ("Valid rows are imported and invalid ones reported with their row number.",
       "An import of {k} rows with one bad row creates {k} minus one {ns}."),
      ("Good lines still become {ns}; bad ones are listed by line number.",
       "One bad line out of {k} leaves the rest imported.")),
    A("BUG", "locale-date", "{N} dates ignore the account locale", "US date format shown to European users "
                                                                   "on {ns}",
      "Dates on {ns} are always formatted as MM/DD/YYYY regardless of the account locale.",
      "European accounts see month-first dates on their {ns}, because the formatter ignores the locale "
      "setting.",
      ("Dates on {ns} follow the account locale.",
       "Changing the locale changes the format without a reload."),
      ("A German account sees day-first dates on {ns}.",
       "The format switches immediately when the locale changes.")),
    A("BUG", "orphans", "Deleting a {n} leaves orphaned records", "Leftover rows remain after removing a {n}",
      "Removing a {n} keeps its dependent rows, which later show up in reports as unknown entries.",
      "After a {n} is deleted, the rows that belonged to it stay behind and appear in reports with no name.",
      ("Deleting a {n} also removes or detaches its dependent records.",
       "Reports no longer show unknown entries."),
      ("No dependent data survives the removal of a {n}.",
       "Reports stop listing nameless entries.")),
    A("BUG", "focus-trap", "Focus trapped in the {n} dialog", "Tab key cannot leave the {n} modal",
      "In the {n} dialog, Tab cycles forever within the form and Escape does nothing, so keyboard users "
      "are stuck.",
      "Keyboard users cannot get out of the {n} modal: Tab loops inside it and Escape is ignored.",
      ("Escape closes the {n} dialog and returns focus to the opener.",
       "An automated accessibility check passes on the dialog."),
      ("Keyboard users can leave the {n} modal with Escape.",
       "The accessibility checker reports no issue for the modal.")),
    A("BUG", "readonly-edit", "View-only users can edit {ns}", "Members with read access are able to "
                                                               "change a {n}",
      "The {surface} hides the edit button from view-only users but the update endpoint accepts their "
      "changes.",
      "Although the button is hidden, a member with read access can still change a {n} by calling the update "
      "endpoint directly.",
      ("Update requests for a {n} from view-only users are refused with 403.",
       "The refusal is covered by an API test."),
      ("Read-only members get a 403 when changing a {n}.",
       "An API test checks the refusal.")),
    A("BUG", "memory", "{N} editor slows down after an hour", "Browser memory grows while the {n} editor "
                                                              "is open",
      "Every autosave of a {n} adds an event listener that is never removed; after an hour typing lags.",
      "Leaving the {n} editor open makes the tab heavier over time: each autosave registers another listener "
      "and none are cleaned up.",
      ("Memory stays flat over 100 autosaves of a {n}.",
       "Typing latency stays under 50 ms after an hour."),
      ("A hundred autosaves do not grow the tab's memory.",
       "Input stays responsive after long sessions.")),
    A("BUG", "tooltip", "Tooltip on {n} status shows the wrong text", "Hover help for {n} states is out of "
                                                                      "date",
      "The status tooltip of a {n} still describes the states from before the last redesign.",
      "Hovering over the state of a {n} shows an explanation that no longer matches the current states.",
      ("Each {n} status tooltip matches the current definition.",
       "Tooltips are translated like the rest of the page."),
      ("The hover help describes today's states.",
       "The help texts appear in the user's language.")),
    A("BUG", "api-500", "API returns 500 when listing {ns} with an empty filter",
      "Server error from the {n} endpoint if the filter is blank",
      "Calling the {n} list endpoint with an empty filter parameter causes an unhandled exception and a 500.",
      "Passing a blank filter to the endpoint that lists {ns} makes the server fail instead of ignoring it.",
      ("An empty filter returns all {ns} with 200.",
       "Malformed filters return 422 with a message."),
      ("A blank filter is treated as no filter.",
       "Invalid filters are answered with a 422 explanation.")),
    A("BUG", "undo-wrong", "Undo restores the wrong {n}", "Reverting a change brings back a different {n}",
      "When two {ns} are edited in different tabs, Undo in one tab restores the other {n}'s previous "
      "version.",
      "Working on two {ns} in separate tabs, reverting in one of them brings back the old state of the "
      "other.",
      ("Undo restores only the {n} that was edited in that tab.",
       "A test covers two tabs editing different {ns}."),
      ("Reverting affects just the {n} on screen.",
       "The two-tab situation is covered by a test.")),
    A("BUG", "double-email", "Two emails sent for every {n} change", "Each {n} update triggers the same "
                                                                     "notification twice",
      "The notification for a changed {n} is enqueued by both the API handler and the background job.",
      "People get the same mail twice when a {n} changes, because both the request handler and the worker "
      "queue it.",
      ("Changing a {n} sends exactly one email.",
       "A test asserts one queued message per change."),
      ("A single update results in a single mail.",
       "The queue holds one message per change in tests.")),
    A("BUG", "dark-mode", "{N} badges unreadable in dark mode", "Low-contrast {n} labels with the dark theme",
      "With the dark theme, the status badges of {ns} have a contrast ratio of 1.8:1.",
      "The labels on {ns} almost disappear in dark mode; their contrast is far below the accessibility "
      "minimum.",
      ("Badges on {ns} reach a 4.5:1 contrast ratio in both themes.",
       "The visual regression test covers the dark theme."),
      ("Labels on {ns} meet WCAG AA contrast in dark mode.",
       "Dark mode screenshots are part of the visual tests.")),
    # ---- tasks
    A("TASK", "split-module", "Split the {n} module into smaller files", "Break up the oversized {n} "
                                                                         "source file",
      "The {n} module has grown past 1,500 lines; split it by responsibility without changing behaviour.",
      "One source file holds all the {n} logic, over fifteen hundred lines of it; divide it into focused "
      "files while keeping behaviour identical.",
      ("No file in the {n} module exceeds 400 lines.",
       "All existing tests pass unchanged."),
      ("Each resulting file stays below four hundred lines.",
       "The current test suite passes without edits.")),
    A("TASK", "coverage", "Raise test coverage of {n} code to 80%", "Write the missing unit tests for {ns}",
      "Line coverage of the {n} code is 45%; add tests for the untested branches until it reaches 80%.",
      "Large parts of the logic for {ns} have no tests; cover the missing branches so at least four fifths "
      "of the lines run under test.",
      ("Coverage of the {n} code is at least 80%.",
       "CI fails if coverage of the {n} code drops below 80%."),
      ("Four fifths of the lines about {ns} are exercised by tests.",
       "The pipeline guards that threshold.")),
    A("TASK", "upgrade-chart", "Upgrade the charting library used by {n} screens",
      "Bump the chart package behind the {n} views",
      "The {n} screens use a charting library two majors behind; upgrade it and adapt the changed API.",
      "The chart package that draws the {n} views is two major versions old; move to the current one and fix "
      "the calls that changed.",
      ("The charting library is on its latest major version.",
       "Charts on the {n} screens look the same in visual tests."),
      ("The chart package is current.",
       "Visual tests show unchanged charts for {ns}.")),
    A("TASK", "remove-flag", "Remove the old feature flag around {ns}", "Delete the stale toggle guarding "
                                                                        "{n} code paths",
      "The flag that guarded the new {n} flow has been on for everyone for {d} days; remove it and the old "
      "path.",
      "The toggle around the {n} code has been enabled for all accounts for {d} days; take out the toggle "
      "and the dead branch behind it.",
      ("The flag no longer exists in code or configuration.",
       "The old {n} code path is deleted."),
      ("Nothing references the toggle any more.",
       "The branch that served the old {n} flow is gone.")),
    A("TASK", "logging", "Structured logs for {n} operations", "Emit JSON log lines whenever a {n} is "
                                                               "processed",
      "Replace the free-text logs in the {n} service with structured JSON including account id and duration.",
      "Logging around {ns} is unstructured prose; emit JSON records carrying the account identifier and how "
      "long each step took.",
      ("Every {n} operation logs one JSON line with account id and duration.",
       "No free-text log lines remain in the {n} service."),
      ("Each processed {n} produces a JSON record with the account and timing.",
       "Plain-text logging is removed from that code.")),
    A("TASK", "metrics", "Track {n} latency in the metrics dashboard", "Chart how long {n} requests take",
      "Export request latency histograms for the {n} endpoints and add a panel to the service dashboard.",
      "We cannot see how slow the {n} endpoints are; record their timings as histograms and put a chart on "
      "the dashboard.",
      ("The dashboard shows p50 and p95 latency of the {n} endpoints.",
       "An alert fires when p95 stays above 1 s for 10 minutes."),
      ("Median and 95th percentile timings of {n} requests are charted.",
       "A sustained slow 95th percentile raises an alert.")),
    A("TASK", "docs", "Document the {n} lifecycle for new engineers", "Write an onboarding guide to how "
                                                                      "{ns} work",
      "Write a page describing the states of a {n}, the transitions, and where each is implemented.",
      "New engineers struggle to understand {ns}; describe their states, how one becomes another, and which "
      "code handles each step.",
      ("The page lists every {n} state and transition.",
       "Each transition links to the code that implements it."),
      ("All states of a {n} and the moves between them are documented.",
       "Links point to the implementing code.")),
    A("TASK", "types", "Remove `any` types from the {n} code", "Tighten TypeScript types in the {n} package",
      "The {n} package has {d} uses of `any`; replace them with precise types and enable `noImplicitAny`.",
      "Typing in the {n} package is loose, with {d} occurrences of `any`; give them real types and turn on "
      "the strict compiler flag.",
      ("The {n} package compiles with noImplicitAny.",
       "No explicit any remains in the {n} package."),
      ("The strict flag is on for the {n} package and it compiles.",
       "Explicit any types are gone.")),
    A("TASK", "lint", "Fix lint warnings in the {n} folder", "Clean up ESLint complaints around {ns}",
      "The {n} folder produces {d} lint warnings; fix them and make warnings fail CI for that folder.",
      "There are {d} ESLint warnings in the code for {ns}; resolve them and stop tolerating new ones in CI.",
      ("Lint reports zero warnings for the {n} folder.",
       "CI fails on a new warning there."),
      ("No ESLint warning remains in that folder.",
       "New warnings break the pipeline.")),
    A("TASK", "stories", "Storybook stories for {n} components", "Add visual catalogue entries for the {n} "
                                                                 "widgets",
      "Add Storybook stories for every {n} component in its empty, loading, error and filled states.",
      "The widgets that show {ns} are missing from the component catalogue; add entries covering empty, "
      "loading, failing and populated cases.",
      ("Each {n} component has stories for its four states.",
       "Stories run in the visual regression job."),
      ("Every {n} widget appears in the catalogue in all four states.",
       "The visual tests include them.")),
    A("TASK", "e2e", "End-to-end test for the {n} happy path", "Browser test that walks through creating a "
                                                               "{n}",
      "Add a Playwright test that signs in, creates a {n}, edits it and deletes it.",
      "Nothing checks the full journey of a {n} in a browser; write a test that logs in, makes one, "
      "changes it and removes it.",
      ("The Playwright test covers create, edit and delete of a {n}.",
       "It runs in CI on every pull request."),
      ("A browser test goes through the whole life of a {n}.",
       "Pull requests run it automatically.")),
    A("TASK", "rename", "Rename {n} identifiers to match the glossary", "Align {n} naming in code with "
                                                                        "product terms",
      "Code still uses the legacy name for {ns}; rename types, functions and files to the glossary term.",
      "The product calls it a {n} but the code uses an old name; bring identifiers, types and file names in "
      "line with the glossary.",
      ("No identifier uses the legacy name for {ns}.",
       "Public API field names are unchanged."),
      ("Code names match the glossary term.",
       "The external API keeps its field names.")),
    A("TASK", "dead-code", "Delete unused {n} helpers", "Remove {n} functions nothing calls any more",
      "A dead-code scan finds {d} unused exports in the {n} helpers; delete them.",
      "There are {d} helper functions about {ns} that no caller uses; take them out.",
      ("The dead-code scan reports no unused {n} helper.",
       "Build and tests pass."),
      ("No unreferenced {n} function remains.",
       "Everything still builds and tests green.")),
    A("TASK", "ci-speed", "Speed up the {n} test suite in CI", "Make {n} tests run faster on pull requests",
      "The {n} tests take 9 minutes in CI; parallelise them and share fixtures to get under 3.",
      "Pull requests wait nine minutes for the tests about {ns}; split them across workers and reuse "
      "fixtures so they finish within three.",
      ("The {n} test job finishes in under 3 minutes.",
       "No test becomes flaky in 20 consecutive runs."),
      ("The suite for {ns} completes within three minutes.",
       "Twenty runs in a row pass.")),
    A("TASK", "index", "Add a database index for {n} lookups", "Speed up {n} queries with a new index",
      "The {n} lookup by account and date does a sequential scan; add a composite index.",
      "Looking up {ns} by account and date reads the whole table; create an index on those two columns.",
      ("The {n} lookup query uses the new index.",
       "The index is created without locking writes."),
      ("The query plan for {ns} shows an index scan.",
       "Creating the index does not block writes.")),
    A("TASK", "error-messages", "Clearer error messages for {n} validation",
      "Friendlier wording when a {n} fails validation",
      "Validation errors for {ns} show internal field names; map them to readable messages next to each "
      "field.",
      "When a {n} is rejected, people see technical field names; explain each problem in plain words beside "
      "the field concerned.",
      ("Every validation error of a {n} is shown next to its field in plain language.",
       "No internal field name appears in messages."),
      ("Rejections of a {n} are explained beside each field.",
       "Messages never expose internal names.")),
    # ---- security
    A("SEC", "ownership", "Enforce account ownership checks on {n} endpoints",
      "Stop users reading {ns} of other accounts",
      "The {n} endpoints look records up by id without checking the account, so any signed-in user can read "
      "another account's {ns} (IDOR).",
      "Because {ns} are fetched by identifier alone, a logged-in user of one account can retrieve {ns} "
      "belonging to a different account.",
      ("Requesting another account's {n} returns 404.",
       "An automated authorization test covers every {n} endpoint."),
      ("Cross-account access to a {n} is refused.",
       "Each endpoint for {ns} has an access-control test.")),
    A("SEC", "rate-limit", "Rate-limit the {n} API against brute force",
      "Throttle repeated {n} requests from one client",
      "Add per-token and per-IP rate limits to the {n} endpoints: {k} requests per minute, then 429 with "
      "retry-after.",
      "A single client can hammer the {n} endpoints; cap each token and IP address at {k} calls a minute and "
      "answer 429 beyond that.",
      ("The {k}+1st request within a minute gets 429 with retry-after.",
       "Limits are per token and per IP."),
      ("Going over {k} calls per minute is answered with 429.",
       "Tokens and addresses are limited separately.")),
    A("SEC", "xss", "Escape user input in {n} names to prevent XSS", "Script injection possible through "
                                                                     "{n} titles",
      "The {n} name is rendered as HTML in the activity feed; a name containing a script tag executes.",
      "Putting a script element in the title of a {n} runs it in other users' browsers through the activity "
      "feed.",
      ("A {n} name containing HTML is displayed as text everywhere.",
       "A content security policy blocks inline scripts."),
      ("Markup in a {n} title is never interpreted.",
       "Inline scripts are forbidden by the CSP header.")),
    A("SEC", "audit-log", "Security audit log for {n} access", "Record who viewed or changed each {n} for "
                                                               "compliance",
      "Write an append-only audit record for every read and change of a {n}, kept for {d} days.",
      "For compliance, every view and modification of a {n} must leave a tamper-evident trace retained {d} "
      "days.",
      ("Every read and write of a {n} produces an audit record.",
       "Audit records cannot be modified or deleted by users."),
      ("Views and edits of a {n} each leave a trace.",
       "Nobody can alter or remove those traces.")),
    A("SEC", "encrypt", "Encrypt {n} data at rest", "Store {ns} encrypted in the database",
      "Encrypt the sensitive columns of {ns} with envelope encryption and rotate keys yearly.",
      "Sensitive fields of a {n} sit in plain text in the database; protect them with envelope encryption "
      "and a yearly key rotation.",
      ("Sensitive {n} columns are unreadable without the key.",
       "Key rotation re-encrypts {ns} without downtime."),
      ("The stored fields of {ns} are ciphertext.",
       "Rotating keys works while the service stays up.")),
    A("SEC", "csrf", "CSRF protection on {n} forms", "Cross-site request forgery possible on {n} updates",
      "The {n} update form accepts cross-site POSTs; add CSRF tokens and SameSite cookies.",
      "A third-party page can make a signed-in browser change a {n}, because the update form has no "
      "anti-forgery token.",
      ("A {n} update without a valid CSRF token is rejected.",
       "Session cookies are SameSite=Lax."),
      ("Forged cross-site updates of a {n} fail.",
       "Cookies carry the SameSite attribute.")),
    A("SEC", "secrets-in-logs", "Strip secrets from {n} error logs", "Tokens leak into logs when a {n} "
                                                                     "request fails",
      "Error logs of the {n} service include the full request headers, including bearer tokens.",
      "When a request about a {n} fails, the logged context contains the Authorization header in clear.",
      ("No token or password appears in {n} error logs.",
       "A test feeds a secret through a failing request and scans the logs."),
      ("Logs of failed {n} requests are free of credentials.",
       "A test checks the logs for a planted secret.")),
    A("SEC", "session-timeout", "Expire idle sessions on {n} screens", "Log out inactive users working on "
                                                                       "{ns}",
      "Sessions on the {n} screens never expire; sign users out after {d} minutes of inactivity.",
      "Someone who walks away from a {n} page stays signed in forever; end the session after {d} idle "
      "minutes.",
      ("After {d} idle minutes the next request requires a new login.",
       "Unsaved edits to a {n} are kept locally."),
      ("An inactive session ends after {d} minutes.",
       "Work in progress on a {n} is not lost.")),
    A("SEC", "gdpr-export", "GDPR export of personal data in {ns}",
      "Let people download the personal information kept on {ns}",
      "Add the personal data stored on {ns} to the GDPR export, in JSON, within 30 days of a request.",
      "Data subjects may ask for everything we hold about them; the personal fields of {ns} must be in the "
      "machine-readable export.",
      ("The GDPR export includes the personal data of {ns}.",
       "The export is delivered as JSON."),
      ("Personal fields of {ns} are part of the data subject export.",
       "The file is machine-readable JSON.")),
    A("SEC", "cve", "Patch vulnerable parser used for {n} uploads",
      "Upgrade the library with a known CVE in the {n} importer",
      "The XML parser behind {n} uploads has a published CVE allowing external entity expansion; upgrade it "
      "and disable entities.",
      "A known vulnerability in the parsing library used when importing {ns} lets a crafted file read server "
      "files; update it and turn off entity resolution.",
      ("The parser is on a version without the CVE.",
       "A crafted file with an external entity is rejected."),
      ("The importer for {ns} uses a patched library.",
       "Entity-expansion files are refused.")),
    # ---- ideas
    A("IDEA", "suggest", "Suggest {n} values from past entries", "Autocomplete {n} fields using history",
      "When creating a {n}, suggest field values based on the user's previous {ns}.",
      "Filling in a {n} could be faster if the form offered values the same person used before.",
      ("Suggestions appear after typing two characters.",
       "Accepting a suggestion fills the field."),
      ("The form proposes earlier values as the user types.",
       "Picking a proposal completes the field.")),
    A("IDEA", "benchmark", "Benchmark {n} usage against similar accounts", "Compare how peers use {ns}",
      "Show an anonymous comparison of how many {ns} similar accounts have and how they use them.",
      "{Role} wonder whether they use {ns} like their peers; an anonymised comparison with similar accounts "
      "could tell them.",
      ("Comparisons use at least 20 accounts per segment.",
       "No individual account can be identified."),
      ("Each comparison draws on twenty or more accounts.",
       "The figures are anonymous.")),
    A("IDEA", "badges", "Progress badges for {n} milestones", "Reward users who keep {ns} tidy",
      "Award badges for milestones such as the first {n}, {k} {ns}, or a month without stale {ns}.",
      "A little recognition might motivate {role}: badges for the first {n}, for reaching {k}, for a month "
      "with nothing stale.",
      ("Badges are shown on the profile page.",
       "Users can hide badges."),
      ("Earned badges appear on the profile.",
       "Badges can be turned off.")),
    A("IDEA", "tour", "Guided tour of {ns} for new accounts", "Walk first-time users through {ns}",
      "Offer new accounts a five-step interactive tour of {ns}.",
      "First-time users do not discover {ns}; a short interactive walkthrough might help them get started.",
      ("The tour can be skipped and restarted.",
       "Completion rate is tracked."),
      ("Users may skip the walkthrough and replay it.",
       "We measure how many finish it.")),
    A("IDEA", "forecast", "Forecast next month's {ns}", "Predict upcoming {n} volume from trends",
      "Use the last 12 months of {ns} to forecast next month and show a confidence band.",
      "Looking at a year of history, we could predict how many {ns} next month brings, with an uncertainty "
      "range.",
      ("The forecast shows a value and a confidence band.",
       "Backtesting error is reported."),
      ("Predictions come with an uncertainty range.",
       "We publish the backtest error.")),
    A("IDEA", "voice", "Create a {n} by voice on mobile", "Dictate a new {n} into the phone app",
      "Let mobile users dictate a {n}; speech is transcribed and parsed into fields.",
      "On the go, typing is painful; speaking a {n} into the phone and having fields filled in might be "
      "faster.",
      ("Dictation fills at least the name and date of a {n}.",
       "The user confirms before saving."),
      ("Spoken input populates the main fields.",
       "Nothing is saved without confirmation.")),
    A("IDEA", "marketplace", "Template marketplace for {ns}", "Let users share {n} blueprints with each "
                                                              "other",
      "A gallery where accounts publish {n} templates and others import them.",
      "{Role} could share their best {n} blueprints in a public gallery for others to reuse.",
      ("Published templates can be imported in one click.",
       "Authors can unpublish a template."),
      ("Importing a shared blueprint takes one click.",
       "Authors may withdraw what they shared.")),
    A("IDEA", "chat", "Post {n} updates to a chat channel", "Send {n} news to the team's Slack",
      "Post a message to a connected chat channel when a {n} changes state.",
      "Teams live in chat; announcing state changes of {ns} in their channel might replace some emails.",
      ("A state change posts one message.",
       "Channels are chosen per account."),
      ("Each transition produces a single post.",
       "Each account picks its channel.")),
    A("IDEA", "insights", "Weekly insight email about {ns}", "Personal digest of {n} trends",
      "Send each user a weekly email with three insights about their {ns}.",
      "A personal weekly mail pointing out three notable trends in someone's {ns} could bring them back.",
      ("Each insight links to the relevant view.",
       "Users can opt out."),
      ("Every highlighted trend links to its page.",
       "Unsubscribing is possible.")),
    A("IDEA", "offline", "Offline mode for {n} editing", "Edit {ns} without a network connection",
      "Allow editing {ns} offline in the mobile app and sync when back online, resolving conflicts.",
      "Field workers lose signal; letting them change {ns} without a connection and syncing later might "
      "help.",
      ("Edits made offline sync when the connection returns.",
       "Conflicts are shown to the user."),
      ("Changes without signal are uploaded later.",
       "Clashing edits are surfaced for a decision.")),
)


def plural(noun: str) -> str:
    """English plural of a noun phrase: the head noun (last word, or the word before " of ") changes."""
    if " of " in noun:
        head, rest = noun.split(" of ", 1)
        return f"{plural(head)} of {rest}"
    if noun.isupper():  # acronyms: SKU -> SKUs
        return noun + "s"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def article(noun: str) -> str:
    """'a' or 'an' for a noun phrase, by sound rather than letter (an SKU, a usage meter)."""
    first = noun.split()[0]
    if first.isupper() and len(first) > 1:
        return "an" if first[0] in "AEFHILMNORSX" else "a"
    if first.lower().startswith(("un", "up")):
        return "an"
    return "an" if first[0].lower() in "aeio" else "a"


# Word-level synonyms applied at random, per ticket, to the action templates: unrelated tickets that share
# an action then share only part of its wording. Every replacement keeps the a/an class and the grammar
# of its source word; template placeholders are never keys.
SYNONYMS: dict[str, str] = {
    "Add": "Introduce", "add": "introduce", "Allow": "Permit", "allow": "permit",
    "show": "display", "shows": "displays", "shown": "displayed", "Show": "Display",
    "page": "screen", "pages": "screens", "users": "people", "quickly": "fast", "quick": "fast",
    "every": "each", "Every": "Each", "remove": "delete", "Remove": "Delete", "removed": "deleted",
    "create": "make", "creates": "makes", "button": "control", "message": "notice", "messages": "notices",
    "within": "inside", "immediately": "straight away", "correctly": "properly", "refused": "rejected",
    "rejected": "refused", "reload": "refresh", "file": "document", "select": "pick", "selected": "chosen",
    "choose": "pick", "limit": "cap", "limits": "caps", "large": "big", "big": "large", "slow": "sluggish",
    "want": "wish", "wants": "wishes", "last": "previous", "tests": "checks", "test": "check",
    "same": "identical", "appears": "shows up", "appear": "show up", "fix": "correct", "Fix": "Correct",
    "directly": "straight", "stays": "remains", "stay": "remain", "table": "grid", "customer": "client",
    "customers": "clients", "period": "span",
}
