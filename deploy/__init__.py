"""Deploy tooling run by azd's hooks; kept out of the function package (.funcignore)."""
