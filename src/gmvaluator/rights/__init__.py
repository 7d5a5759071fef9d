"""Who owns what and who is owed what: contributors, licences and opt-outs, near-copy flags, and
the append-only ledger of credits (``accounting`` ties them to a valuation run)."""
