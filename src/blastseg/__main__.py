from blastseg.cli import app

app(prog_name="blastseg")
