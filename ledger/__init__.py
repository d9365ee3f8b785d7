"""The case ledger (问题台账): every alert transition kept in a relational database, for the
console, ``cityorder ledger cases``/``show`` and the 督查考核 scorecards (``cityorder report``)."""
