import { errorHint } from './errors';

describe('errorHint', () => {
  it.each([
    [
      'CRD missing',
      { status: 404, message: 'not found' },
      /not installed/,
      /kubectl apply -f config\/crd\/bases/,
    ],
    ['forbidden', { status: 403 }, /not allowed/, /get, list and watch/],
    [
      'unreachable',
      new Error('Failed to fetch'),
      /could not be reached \(Failed to fetch\)/,
      /cluster's connection/,
    ],
  ])('%s', (_, err, title, action) => {
    const h = errorHint(err, 'TrainingJobs');
    expect(h.title).toMatch(title);
    expect(h.action).toMatch(action);
  });
});
