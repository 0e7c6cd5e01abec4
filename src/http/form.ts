/**
 * An HTML form's fields (application/x-www-form-urlencoded), as the pages that mailed links open
 * post them. JSON endpoints never see one as a body object with fields they expect.
 */
export class FormBody {
  constructor(readonly fields: URLSearchParams) {}

  get(name: string): string | undefined {
    return this.fields.get(name) ?? undefined;
  }
}
