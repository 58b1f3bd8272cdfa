-- The documents an agent's turn was answered from (a JSON array of {"document", "passage"}); NULL for
-- every other turn.

ALTER TABLE turns ADD COLUMN sources TEXT;
