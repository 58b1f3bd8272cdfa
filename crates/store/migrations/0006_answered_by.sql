-- Who answered a call the agent placed, as answering-machine detection (AMD) judged it: human, machine
-- or unknown; NULL when the call was not screened.

ALTER TABLE calls ADD COLUMN answered_by TEXT;
