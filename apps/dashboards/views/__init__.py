"""Dashboard pages. Viewers open their own and org-visible dashboards; analysts also pin and edit
their own; admins edit every dashboard they see. Another org's dashboard, or a colleague's private
one, is a 404."""
