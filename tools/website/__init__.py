"""The course's offline website (``make site``) and offline notebook HTML (``make run``)."""
