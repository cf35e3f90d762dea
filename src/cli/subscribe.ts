export async function subscribeCommand(_args: string[]): Promise<void> {
  throw new Error('not yet');
}
