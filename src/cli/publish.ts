export async function publishCommand(_args: string[]): Promise<void> {
  throw new Error('not yet');
}
